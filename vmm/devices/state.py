"""A device model's state as plain JSON values, for snapshots (vmm/snapshot).

Every model with state offers `save_state() -> dict` and `load_state(state)`, and a
STATE_VERSION that grows when its fields change (the snapshot refuses a newer one). Bytes
travel as hex strings, 256-bit register sets as integers; times as guest nanoseconds
relative to the moment of the save, so that a restore on another clock (or engine) puts
every deadline the same distance ahead.

The load side trusts nothing: each field must be present and of the type the model holds
(`put`), so a damaged or hand-edited state fails with a StateError naming the field,
never later inside the run loop.
"""


class StateError(ValueError):
    """A device state that cannot be loaded: a field missing or of the wrong type."""


def pick(obj, names) -> dict:
    """{name: obj.name} for `names` (attributes holding JSON-ready values)."""
    return {name.lstrip("_"): getattr(obj, name) for name in names}


def put(obj, state: dict, names) -> None:
    """obj.name = state[name] for `names`, each checked against the type obj holds now (a
    fresh model: where it holds None, as for a count not yet written, an int may come too)."""
    for name in names:
        key = name.lstrip("_")
        if key not in state:
            raise StateError(f"{type(obj).__name__}: field {key!r} is missing")
        setattr(obj, name, checked(state[key], getattr(obj, name), f"{type(obj).__name__}.{key}"))


def checked(value, like, what: str):
    """`value` if its JSON type matches that of `like` (bool is not int), else StateError."""
    if isinstance(like, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and (like is None or isinstance(like, bool))
    elif like is None:
        ok = value is None or isinstance(value, int)
    elif isinstance(like, int):
        ok = isinstance(value, int)
    elif isinstance(like, float):
        ok = isinstance(value, (int, float))
    else:
        ok = isinstance(value, type(like))
    if not ok:
        raise StateError(f"{what}: {type(value).__name__} where {type(like).__name__} belongs")
    return value


def need(state: dict, key: str, kind, what: str):
    """state[key], which must be of type `kind` (a type or tuple)."""
    if not isinstance(state, dict) or key not in state:
        raise StateError(f"{what}: field {key!r} is missing")
    value = state[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise StateError(f"{what}.{key}: {type(value).__name__} is not the expected type")
    return value


def hex_bytes(state: dict, key: str, what: str) -> bytes:
    """Bytes saved as a hex string."""
    try:
        return bytes.fromhex(need(state, key, str, what))
    except ValueError:
        raise StateError(f"{what}.{key}: not a hex string") from None
