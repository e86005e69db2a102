"""A bundle's config.json (OCI runtime-spec 1.0-1.2), read and checked before anything is created.

load(bundle) returns a Spec: the parts this runtime applies, already converted (mount options
to flags, devices to Device tuples, namespaces to a list), and the raw JSON for what is passed
on unchanged (resources, seccomp, hooks, the process for `start`). Every field is checked for
its type here, so that a malformed config fails with one line naming the field (status 78), not
half-way through the container's set-up. Fields this runtime cannot honour are refused with the
reason (user and time namespaces, id-mapped mounts, intelRdt, a seccomp agent); fields with no
effect on Linux (windows, solaris, vm...) are ignored, as the spec allows for other platforms.
"""
import json
import os

from ..container import devices, mounts
from ..container.namespaces import OCI_TYPES
from ..host.container_calls import MS_BIND
from .errors import ConfigError, InputError

CONFIG = "config.json"
SUPPORTED_MAJOR = "1"          # semantic versioning: 1.x configs are compatible with each other
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
REFUSED_NAMESPACES = {"time": "time namespaces are not supported by this runtime"}
PROPAGATIONS = {"shared": mounts.PROPAGATION["rshared"], "slave": mounts.PROPAGATION["rslave"],
                "private": mounts.PROPAGATION["rprivate"], "unbindable": mounts.PROPAGATION["runbindable"]}


class Spec:
    """The checked config: attributes named after the JSON fields they come from."""

    def __init__(self, raw: dict, bundle: str):
        self.raw, self.bundle = raw, bundle
        self.version = raw["ociVersion"]
        self.annotations = _dict(raw.get("annotations"), "annotations")
        root = _dict(raw.get("root"), "root")
        if not isinstance(root.get("path"), str) or not root["path"]:
            raise ConfigError("config.json: root.path is required (the container's root file system)")
        self.rootfs = os.path.realpath(os.path.join(bundle, root["path"]))
        self.root_readonly = bool(root.get("readonly", False))
        self.process = raw.get("process")
        if self.process is not None:
            check_process(self.process, "process")
        self.hostname = _str(raw.get("hostname"), "hostname")
        self.domainname = _str(raw.get("domainname"), "domainname")
        self.mounts = [_mount(m, i) for i, m in enumerate(_list(raw.get("mounts"), "mounts"))]
        self.hooks = _hooks(_dict(raw.get("hooks"), "hooks"))
        linux = _dict(raw.get("linux"), "linux")
        self.namespaces = _namespaces(_list(linux.get("namespaces"), "linux.namespaces"))
        self.uid_mappings = _mappings(linux.get("uidMappings"), "linux.uidMappings")
        self.gid_mappings = _mappings(linux.get("gidMappings"), "linux.gidMappings")
        if self.has_namespace("user") and not self.namespace_path("user") and not (self.uid_mappings and
                                                                                   self.gid_mappings):
            raise ConfigError("config.json: a new user namespace needs linux.uidMappings and linux.gidMappings")
        if (self.uid_mappings or self.gid_mappings) and not self.has_namespace("user"):
            raise ConfigError("config.json: linux.uidMappings need a user namespace in linux.namespaces")
        if linux.get("intelRdt"):
            raise ConfigError("config.json: linux.intelRdt is not supported by this runtime")
        self.resources = _dict(linux.get("resources"), "linux.resources")
        self.device_rules = [_device_rule(r, i) for i, r in enumerate(_list(self.resources.get("devices"),
                                                                           "linux.resources.devices"))]
        self.cgroups_path = _str(linux.get("cgroupsPath"), "linux.cgroupsPath")
        self.devices = devices.with_defaults([_device(d, i) for i, d in enumerate(_list(linux.get("devices"),
                                                                                     "linux.devices"))])
        self.masked_paths = _paths(linux.get("maskedPaths"), "linux.maskedPaths")
        self.readonly_paths = _paths(linux.get("readonlyPaths"), "linux.readonlyPaths")
        self.sysctl = {str(k): str(v) for k, v in _dict(linux.get("sysctl"), "linux.sysctl").items()}
        self.seccomp = _dict(linux.get("seccomp"), "linux.seccomp") or None
        propagation = linux.get("rootfsPropagation")
        if propagation not in (None, "", *PROPAGATIONS):
            raise ConfigError(f"config.json: linux.rootfsPropagation {propagation!r} is not one of "
                              f"{', '.join(PROPAGATIONS)}")
        self.rootfs_propagation = PROPAGATIONS.get(propagation)
        personality = _dict(linux.get("personality"), "linux.personality")
        if personality and personality.get("domain") not in ("LINUX", None):
            raise ConfigError(f"config.json: linux.personality domain {personality.get('domain')!r} is not "
                              "supported by this runtime (only LINUX)")

    def has_namespace(self, kind: str) -> bool:
        return any(entry["type"] == kind for entry in self.namespaces)

    def namespace_path(self, kind: str):
        for entry in self.namespaces:
            if entry["type"] == kind:
                return entry.get("path") or None
        return None


def load(bundle: str) -> Spec:
    """Read BUNDLE/config.json; InputError if it is missing, ConfigError if it is not valid."""
    bundle = os.path.realpath(bundle)
    path = os.path.join(bundle, CONFIG)
    try:
        with open(path) as file:
            raw = json.load(file)
    except FileNotFoundError:
        raise InputError(f"bundle {bundle}: no {CONFIG}") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    return from_json(raw, bundle)


def from_json(raw, bundle: str) -> Spec:
    if not isinstance(raw, dict):
        raise ConfigError("config.json must be a JSON object")
    version = raw.get("ociVersion")
    if not isinstance(version, str) or version.split(".")[0] != SUPPORTED_MAJOR:
        raise ConfigError(f"config.json: ociVersion {version!r} is not a runtime-spec version this runtime "
                          f"supports ({SUPPORTED_MAJOR}.x)")
    spec = Spec(raw, bundle)
    if not os.path.isdir(spec.rootfs):
        raise InputError(f"root file system {spec.rootfs}: no such directory")
    return spec


# --- field checkers -----------------------------------------------------------------------------

def _dict(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"config.json: {where} must be an object")
    return value


def _list(value, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"config.json: {where} must be an array")
    return value


def _str(value, where: str):
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"config.json: {where} must be a string")
    return value


def _int(value, where: str, minimum=None):
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        raise ConfigError(f"config.json: {where} must be an integer" + (f" >= {minimum}" if minimum is not None else ""))
    return value


def _strings(value, where: str) -> list:
    items = _list(value, where)
    if not all(isinstance(item, str) for item in items):
        raise ConfigError(f"config.json: {where} must be an array of strings")
    return items


def _paths(value, where: str) -> list:
    items = _strings(value, where)
    for item in items:
        if not item.startswith("/"):
            raise ConfigError(f"config.json: {where}: {item!r} is not an absolute path")
    return items


def check_process(process, where: str) -> None:
    """Check a `process` object (config.json's, or `exec --process`'s)."""
    _dict(process, where)
    args = _strings(process.get("args"), f"{where}.args")
    if not args or not args[0]:
        raise ConfigError(f"config.json: {where}.args must name the program to run")
    cwd = process.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise ConfigError(f"config.json: {where}.cwd must be an absolute path")
    for entry in _strings(process.get("env"), f"{where}.env"):
        if "=" not in entry:
            raise ConfigError(f"config.json: {where}.env entry {entry!r} is not NAME=VALUE")
    user = _dict(process.get("user"), f"{where}.user")
    for key in ("uid", "gid", "umask"):
        _int(user.get(key), f"{where}.user.{key}", 0)
    for gid in _list(user.get("additionalGids"), f"{where}.user.additionalGids"):
        _int(gid, f"{where}.user.additionalGids[]", 0)
    seen = set()
    for index, limit in enumerate(_list(process.get("rlimits"), f"{where}.rlimits")):
        _dict(limit, f"{where}.rlimits[{index}]")
        kind = limit.get("type")
        if not isinstance(kind, str) or kind in seen:
            raise ConfigError(f"config.json: {where}.rlimits[{index}].type is missing or repeated ({kind!r})")
        seen.add(kind)
        _int(limit.get("soft"), f"{where}.rlimits[{index}].soft", 0)
        _int(limit.get("hard"), f"{where}.rlimits[{index}].hard", 0)
    capabilities = _dict(process.get("capabilities"), f"{where}.capabilities")
    for kind, names in capabilities.items():
        _strings(names, f"{where}.capabilities.{kind}")
    _int(process.get("oomScoreAdj"), f"{where}.oomScoreAdj")
    size = _dict(process.get("consoleSize"), f"{where}.consoleSize")
    _int(size.get("height"), f"{where}.consoleSize.height", 0)
    _int(size.get("width"), f"{where}.consoleSize.width", 0)


def _mount(entry, index: int) -> mounts.Mount:
    where = f"mounts[{index}]"
    _dict(entry, where)
    destination = entry.get("destination")
    if not isinstance(destination, str) or not destination:
        raise ConfigError(f"config.json: {where}.destination is required")
    options = _strings(entry.get("options"), f"{where}.options")
    try:
        parsed = mounts.parse_options(options)
    except ValueError as error:
        raise ConfigError(f"config.json: {where} ({destination}): {error}") from None
    kind = _str(entry.get("type"), f"{where}.type") or ("bind" if parsed.bind else "")
    if kind == "bind" and not parsed.bind:
        parsed = parsed._replace(flags=parsed.flags | MS_BIND, bind=True)
    if not kind:
        raise ConfigError(f"config.json: {where} ({destination}) has no type and is not a bind mount")
    if parsed.bind and not entry.get("source"):
        raise ConfigError(f"config.json: {where} ({destination}) is a bind mount without a source")
    if entry.get("uidMappings") or entry.get("gidMappings"):
        raise ConfigError(f"config.json: {where} ({destination}): id-mapped mounts are not supported by this runtime")
    return mounts.Mount("/" + destination.lstrip("/"), kind, _str(entry.get("source"), f"{where}.source"), parsed)


def _namespaces(entries: list) -> list:
    seen = set()
    for index, entry in enumerate(entries):
        _dict(entry, f"linux.namespaces[{index}]")
        kind = entry.get("type")
        if kind not in OCI_TYPES:
            raise ConfigError(f"config.json: linux.namespaces[{index}].type {kind!r} is not a namespace type "
                              f"({', '.join(OCI_TYPES)})")
        if kind in seen:
            raise ConfigError(f"config.json: linux.namespaces lists {kind} twice")
        seen.add(kind)
        if kind in REFUSED_NAMESPACES:
            raise ConfigError(f"config.json: linux.namespaces: {REFUSED_NAMESPACES[kind]}")
        path = _str(entry.get("path"), f"linux.namespaces[{index}].path")
        if path and not path.startswith("/"):
            raise ConfigError(f"config.json: linux.namespaces[{index}].path must be absolute")
    return entries


def _mappings(entries, where: str) -> list:
    """[(containerID, hostID, size)] of an OCI id mapping list."""
    result = []
    for index, entry in enumerate(_list(entries, where)):
        _dict(entry, f"{where}[{index}]")
        values = tuple(_int(entry.get(key), f"{where}[{index}].{key}", 0) for key in ("containerID", "hostID", "size"))
        if None in values or values[2] == 0:
            raise ConfigError(f"config.json: {where}[{index}] needs containerID, hostID and a size above 0")
        result.append(values)
    return result


def _device(entry, index: int) -> devices.Device:
    where = f"linux.devices[{index}]"
    _dict(entry, where)
    kind, path = entry.get("type"), entry.get("path")
    if kind not in ("c", "b", "u", "p"):
        raise ConfigError(f"config.json: {where}.type must be c, b, u or p, not {kind!r}")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"config.json: {where}.path must be an absolute path")
    major = _int(entry.get("major"), f"{where}.major", 0)
    minor = _int(entry.get("minor"), f"{where}.minor", 0)
    if kind != "p" and (major is None or minor is None):
        raise ConfigError(f"config.json: {where} ({path}) needs major and minor numbers")
    mode = _int(entry.get("fileMode"), f"{where}.fileMode", 0)
    return devices.Device(path, kind, major or 0, minor or 0, 0o666 if mode is None else mode,
                          _int(entry.get("uid"), f"{where}.uid", 0) or 0, _int(entry.get("gid"), f"{where}.gid", 0) or 0)


def _device_rule(entry, index: int) -> devices.Rule:
    where = f"linux.resources.devices[{index}]"
    _dict(entry, where)
    if not isinstance(entry.get("allow"), bool):
        raise ConfigError(f"config.json: {where}.allow must be true or false")
    kind = entry.get("type") or "a"
    access = entry.get("access") or "rwm"
    if kind not in ("a", "c", "b") or not set(access) <= set("rwm"):
        raise ConfigError(f"config.json: {where}: type must be a, c or b and access a subset of rwm")
    return devices.Rule(entry["allow"], kind, _int(entry.get("major"), f"{where}.major"),
                        _int(entry.get("minor"), f"{where}.minor"), access)


def _hooks(hooks: dict) -> dict:
    result = {}
    for kind in HOOK_KINDS:
        entries = _list(hooks.get(kind), f"hooks.{kind}")
        for index, hook in enumerate(entries):
            where = f"hooks.{kind}[{index}]"
            _dict(hook, where)
            if not isinstance(hook.get("path"), str) or not hook["path"].startswith("/"):
                raise ConfigError(f"config.json: {where}.path must be an absolute path")
            _strings(hook.get("args"), f"{where}.args")
            _strings(hook.get("env"), f"{where}.env")
            if _int(hook.get("timeout"), f"{where}.timeout") is not None and hook["timeout"] <= 0:
                raise ConfigError(f"config.json: {where}.timeout must be greater than zero")
        result[kind] = entries
    return result
