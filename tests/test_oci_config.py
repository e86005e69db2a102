"""The OCI runtime's pure parts: config.json checks, mount options, cgroup files for v1 and v2,
paths resolved inside a root, the log formats, the features document. No container is made here."""
import json
import os

import pytest

from vmm.container import cgroup_limits, devices, mounts, paths_in_root
from vmm.host import container_calls as libc
from vmm.oci import spec as spec_module
from vmm.oci.errors import ConfigError, InputError
from vmm.oci.features import default_spec, features
from vmm.oci.log import Log


def bundle_with(tmp_path, **changes):
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    config = default_spec()
    for key, value in changes.items():
        config[key] = value
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


# --- config.json --------------------------------------------------------------------------------

def test_default_spec_loads_with_defaults_applied(tmp_path):
    spec = spec_module.load(bundle_with(tmp_path))
    assert spec.rootfs == str((tmp_path / "rootfs").resolve())
    assert spec.has_namespace("pid") and not spec.namespace_path("pid")
    assert [m.destination for m in spec.mounts][:2] == ["/proc", "/dev"]
    assert {d.path for d in spec.devices} >= {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                               "/dev/urandom", "/dev/tty"}
    assert spec.device_rules == [devices.Rule(False, "a", None, None, "rwm")]


@pytest.mark.parametrize("changes, message", [
    ({"ociVersion": "2.0.0"}, "ociVersion"),
    ({"process": {"args": [], "cwd": "/"}}, "process.args"),
    ({"process": {"args": ["sh"], "cwd": "relative"}}, "cwd must be an absolute path"),
    ({"process": {"args": ["sh"], "cwd": "/", "env": ["NOEQUALS"]}}, "NAME=VALUE"),
    ({"process": {"args": ["sh"], "cwd": "/", "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}] * 2}},
     "repeated"),
    ({"mounts": [{"destination": "/x", "type": "none", "source": "/y", "options": ["idmap", "bind"]}]}, "id-mapped"),
    ({"mounts": [{"destination": "/x", "options": ["bind"]}]}, "without a source"),
    ({"linux": {"namespaces": [{"type": "user"}]}}, "needs linux.uidMappings"),
    ({"linux": {"namespaces": [{"type": "time"}]}}, "time namespaces"),
    ({"linux": {"uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}}, "need a user namespace"),
    ({"linux": {"namespaces": [{"type": "user"}], "uidMappings": [{"containerID": 0, "hostID": 1, "size": 0}],
                "gidMappings": []}}, "size above 0"),
    ({"linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}}, "twice"),
    ({"linux": {"namespaces": [{"type": "bogus"}]}}, "not a namespace type"),
    ({"linux": {"devices": [{"type": "x", "path": "/dev/x"}]}}, "must be c, b, u or p"),
    ({"linux": {"rootfsPropagation": "sideways"}}, "rootfsPropagation"),
    ({"hooks": {"prestart": [{"path": "relative"}]}}, "absolute path"),
    ({"hooks": {"poststop": [{"path": "/bin/true", "timeout": 0}]}}, "greater than zero"),
])
def test_bad_config_is_refused_naming_the_field(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message) as caught:
        spec_module.load(bundle_with(tmp_path, **changes))
    assert caught.value.exit_status == 78


def test_missing_bundle_pieces_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no config.json"):
        spec_module.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        spec_module.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(default_spec()))
    with pytest.raises(InputError, match="no such directory"):
        spec_module.load(tmp_path)          # root.path "rootfs" is missing


def test_unknown_annotations_and_properties_are_accepted(tmp_path):
    spec = spec_module.load(bundle_with(tmp_path, annotations={"org.example.unknown": "1"}, somethingNew=True))
    assert spec.annotations == {"org.example.unknown": "1"}


# --- mount options -------------------------------------------------------------------------------

def test_mount_options_split_into_flags_propagation_recursive_and_data():
    parsed = mounts.parse_options(["nosuid", "noexec", "ro", "rw", "rprivate", "rnodev", "mode=755", "size=1k"])
    assert parsed.flags == libc.MS_NOSUID | libc.MS_NOEXEC          # rw cleared the ro before it
    assert parsed.cleared == libc.MS_RDONLY
    assert parsed.propagation == [libc.MS_PRIVATE | libc.MS_REC]
    assert parsed.rec_set == libc.MOUNT_ATTR_NODEV and parsed.rec_clr == 0
    assert parsed.data == "mode=755,size=1k"
    assert not parsed.bind
    assert mounts.parse_options(["rbind"]).flags == libc.MS_BIND | libc.MS_REC


# --- cgroup files ----------------------------------------------------------------------------------

RESOURCES = {"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
             "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
             "pids": {"limit": 20}}


def test_cgroup_v1_files():
    files, warnings = cgroup_limits.files(1, RESOURCES)
    assert files == [("memory", "memory.limit_in_bytes", 64 << 20), ("memory", "memory.memsw.limit_in_bytes", 96 << 20),
                     ("memory", "memory.soft_limit_in_bytes", 32 << 20), ("cpu", "cpu.shares", 512),
                     ("cpu", "cpu.cfs_period_us", 100000), ("cpu", "cpu.cfs_quota_us", 50000),
                     ("cpuset", "cpuset.cpus", "0"), ("pids", "pids.max", 20)]
    assert warnings == []


def test_cgroup_v2_files():
    files, _ = cgroup_limits.files(2, RESOURCES)
    assert files == [("memory", "memory.max", 64 << 20), ("memory", "memory.swap.max", 32 << 20),
                     ("memory", "memory.low", 32 << 20), ("cpu", "cpu.weight", cgroup_limits.shares_to_weight(512)),
                     ("cpu", "cpu.max", "50000 100000"), ("cpuset", "cpuset.cpus", "0"), ("pids", "pids.max", 20)]
    unlimited, _ = cgroup_limits.files(2, {"memory": {"limit": -1}, "pids": {"limit": -1}})
    assert unlimited == [("memory", "memory.max", "max"), ("pids", "pids.max", "max")]


@pytest.mark.parametrize("version, resources, message", [
    (1, {"blockIO": {"weight": 10}}, "blockIO"),
    (2, {"memory": {"swappiness": 10}}, "no cgroup v2 equivalent"),
    (2, {"memory": {"limit": 100, "swap": 50}}, "below the memory limit"),
    (1, {"unified": {"memory.high": "1"}}, "needs cgroup v2"),
    (2, {"unified": {"../escape": "1"}}, "not a cgroup file name"),
])
def test_cgroup_settings_that_cannot_apply_are_refused(version, resources, message):
    with pytest.raises(cgroup_limits.LimitError, match=message):
        cgroup_limits.files(version, resources)


def test_device_rules_v1_lines_in_order():
    rules = [devices.Rule(False, "a", None, None, "rwm"), devices.Rule(True, "c", 1, 3, "rwm"),
             devices.Rule(True, "c", 136, None, "rw")]
    assert cgroup_limits.device_rules_v1(rules) == [("devices.deny", "a rwm"), ("devices.allow", "c 1:3 rwm"),
                                                    ("devices.allow", "c 136:* rw")]


# --- paths inside a root ---------------------------------------------------------------------------

def test_symlinks_resolve_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    os.symlink("/../../../../etc", root / "escape")          # absolute: restarts at the root
    os.symlink("../../..", root / "real" / "up")              # relative: .. stops at the root
    os.symlink("real", root / "dev")
    assert paths_in_root.resolve(str(root), "/escape/passwd") == str(root / "etc" / "passwd")
    assert paths_in_root.resolve(str(root), "/real/up/x") == str(root / "x")
    assert paths_in_root.resolve(str(root), "/dev/null") == str(root / "real" / "null")
    assert paths_in_root.resolve_parent(str(root), "/dev") == str(root / "dev")       # the link itself
    assert paths_in_root.resolve_parent(str(root), "/escape/x") == str(root / "etc" / "x")
    made = paths_in_root.mkdir_all(str(root), "/escape/sub")
    assert made == str(root / "etc" / "sub") and os.path.isdir(made)
    os.symlink("loop", root / "loop")
    with pytest.raises(OSError, match="too many levels"):
        paths_in_root.resolve(str(root), "/loop/x")


# --- log and features ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_lines_as_runc_writes_them(tmp_path, fmt, capsys):
    log = Log(str(tmp_path / "log"), fmt)
    log.error('cannot "start": x')
    line = (tmp_path / "log").read_text().strip()
    if fmt == "json":
        entry = json.loads(line)
        assert entry["level"] == "error" and entry["msg"] == 'cannot "start": x' and entry["time"].endswith("Z")
    else:
        assert line.startswith('time="') and line.endswith('level=error msg="cannot \\"start\\": x"')
    assert capsys.readouterr().err == 'vmm-oci: error: cannot "start": x\n'


def test_features_document():
    document = features()
    assert document["ociVersionMin"] == "1.0.0"
    assert set(document["hooks"]) == {"prestart", "createRuntime", "createContainer", "startContainer",
                                      "poststart", "poststop"}
    assert "time" not in document["linux"]["namespaces"] and {"mount", "user"} <= set(document["linux"]["namespaces"])
    assert {"rbind", "rprivate", "rro", "tmpcopyup"} <= set(document["mountOptions"])
    assert document["linux"]["cgroup"]["v1"] and document["linux"]["cgroup"]["v2"]
    assert "SCMP_ACT_ERRNO" in document["linux"]["seccomp"]["actions"]


def test_vmm_oci_is_also_a_vmm_subcommand(tmp_path):
    import subprocess
    import sys
    vmm = os.path.join(os.path.dirname(sys.executable), "vmm")
    document = subprocess.run([vmm, "oci", "features"], capture_output=True, text=True, check=True).stdout
    assert json.loads(document)["ociVersionMax"] == features()["ociVersionMax"]
    missing = subprocess.run([vmm, "oci", "--root", str(tmp_path), "state", "nosuch"], capture_output=True, text=True)
    assert missing.returncode == 67 and missing.stderr.startswith("vmm-oci: error: container nosuch does not exist")


@pytest.mark.parametrize("path, expected", [
    ("machine.slice:libpod:abc", "/machine.slice/libpod-abc.scope"),
    ("user-1000.slice:crio:x", "/user.slice/user-1000.slice/crio-x.scope"),
    (":runc:c1", "/system.slice/runc-c1.scope"),
])
def test_systemd_cgroup_paths_become_the_units_directories(path, expected):
    """--systemd-cgroup: "slice:prefix:name" names the cgroup systemd would make for the unit."""
    from vmm.oci.create import cgroup_path

    class Runtime:
        systemd_cgroup = True
        log = Log()
    spec = type("Spec", (), {"cgroups_path": path})()
    assert cgroup_path(spec, "id", Runtime()) == expected
    with pytest.raises(ConfigError, match="slice:prefix:name"):
        cgroup_path(type("Spec", (), {"cgroups_path": "/plain/path"})(), "id", Runtime())
