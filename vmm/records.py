"""@record: the small part of dataclasses.dataclass the VMM uses, without its start-up cost.

The standard module imports inspect (and with it ast, dis, tokenize, enum...) and compiles an
__init__ per class with exec(): together about 20 ms of every `vmm run` here, before the VM
exists (`vmm bench startup` prints the import budget). A record is written the same way:

    @record
    class Outcome:
        reason: str
        status: int | None = None
        regs: dict = field(default_factory=dict)

Its annotated class attributes are its fields, in order (a subclass's come after its base's).
It gets __init__ (positional or keyword arguments; __post_init__ is called if the class has
one), __eq__ (same class, equal fields) and __repr__, and, like a dataclass with eq, no
__hash__. Nothing else: no ordering, no frozen, no slots. replace() makes a changed copy, asdict() a dict.
"""
_MISSING = object()


class field:
    """A field whose default is made per instance: field(default_factory=list)."""
    __slots__ = ("default_factory",)

    def __init__(self, *, default_factory):
        self.default_factory = default_factory


def record(cls):
    names = []
    for base in reversed(cls.__mro__[1:]):
        names.extend(name for name in getattr(base, "__record_fields__", ()) if name not in names)
    defaults = {name: default for name, default in getattr(cls, "__record_defaults__", {}).items()}
    for name in cls.__dict__.get("__annotations__", {}):
        if name not in names:
            names.append(name)
        default = cls.__dict__.get(name, _MISSING)
        defaults[name] = default
        if isinstance(default, field):
            delattr(cls, name)              # as dataclasses does: no class attribute for a factory
    cls.__record_fields__ = tuple(names)
    cls.__record_defaults__ = defaults
    cls.__init__ = _init
    cls.__eq__ = _eq
    cls.__repr__ = _repr
    cls.__hash__ = None
    return cls


def _init(self, *args, **kwargs):
    names = self.__record_fields__
    if len(args) > len(names):
        raise TypeError(f"{type(self).__name__}() takes {len(names)} arguments, {len(args)} given")
    for name, value in zip(names, args):
        setattr(self, name, value)
    defaults = self.__record_defaults__
    for name in names[len(args):]:
        if name in kwargs:
            value = kwargs.pop(name)
        else:
            value = defaults[name]
            if value is _MISSING:
                raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
            if isinstance(value, field):
                value = value.default_factory()
        setattr(self, name, value)
    if kwargs:
        raise TypeError(f"{type(self).__name__}() got unexpected arguments {', '.join(map(repr, kwargs))}")
    post_init = getattr(self, "__post_init__", None)
    if post_init is not None:
        post_init()


def _eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    return all(getattr(self, name) == getattr(other, name) for name in self.__record_fields__)


def _repr(self):
    values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_fields__)
    return f"{type(self).__name__}({values})"


def replace(instance, **changes):
    """A copy of `instance` with `changes` (dataclasses.replace for records)."""
    values = {name: getattr(instance, name) for name in instance.__record_fields__}
    values.update(changes)
    return type(instance)(**values)


def asdict(instance):
    """dataclasses.asdict for records: fields by name, records inside (also in lists, tuples
    and dicts) as dicts too, containers copied."""
    if hasattr(type(instance), "__record_fields__"):
        return {name: asdict(getattr(instance, name)) for name in instance.__record_fields__}
    if isinstance(instance, (list, tuple)):
        return type(instance)(asdict(item) for item in instance)
    if isinstance(instance, dict):
        return {key: asdict(value) for key, value in instance.items()}
    return instance
