"""The layering of vmm/, read from the source with `ast` (nothing is imported):

  - no import cycles between modules (an import inside a function counts too);
  - devices never import an engine, and engines import device models only for the software
    engine's interrupt platform (engines/pc_platform.py), as KVM owns its in-kernel one;
  - only vmm/kvm/, memory.py, vmm/host/ and the unicorn engine's binding (engines/unicorn_lib.py,
    libunicorn's C API, and engines/unicorn_binding.py) import ctypes: pointers stay there;
  - the `fcntl` module is used nowhere (KVM goes through vmm/kvm's ctypes ioctl);
  - no module in vmm/ is over 500 lines.
"""
import ast
from pathlib import Path

from vmm import paths

PACKAGE = paths.REPO_ROOT / "vmm"
MAX_LINES = 500
CTYPES_ALLOWED = ("vmm.kvm", "vmm.host", "vmm.memory", "vmm.engines.unicorn_binding", "vmm.engines.unicorn_lib")
PLATFORM = "vmm.engines.pc_platform"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict:
    """{module name: path} of every module in the package."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, modules) -> set:
    """The modules `name` imports: within vmm, the submodule when `from package import x`
    names one, else the package; outside vmm, the top-level name."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in modules else target)
    return found


def graph() -> dict:
    modules = sources()
    return {name: imports(name, path, modules) for name, path in modules.items()}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_graph_is_read():
    edges = graph()
    assert "vmm.engines.unicorn_exits" in edges["vmm.engines.unicorn"]
    assert "vmm.devices.pic" in edges[PLATFORM]
    assert "ctypes" in edges["vmm.kvm.structs"]


def test_no_import_cycles():
    edges = graph()
    internal = {name: {t for t in targets if t in edges and t != name} for name, targets in edges.items()}
    cycles, index, low, stack, on_stack, counter = [], {}, {}, [], set(), [0]

    def visit(node):                    # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in internal[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in internal:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_devices_never_import_engines():
    edges = graph()
    wrong = {name: sorted(t for t in targets if within(t, "vmm.engines"))
             for name, targets in edges.items() if within(name, "vmm.devices")}
    assert not {name: t for name, t in wrong.items() if t}


def test_engines_import_devices_only_for_the_software_platform():
    edges = graph()
    wrong = {name: sorted(t for t in targets if within(t, "vmm.devices"))
             for name, targets in edges.items() if within(name, "vmm.engines") and name != PLATFORM}
    assert not {name: t for name, t in wrong.items() if t}


def test_only_the_bindings_import_ctypes():
    edges = graph()
    users = sorted(name for name, targets in edges.items() if "ctypes" in targets)
    assert users, "no module imports ctypes: the graph is not being read"
    assert [name for name in users if not any(within(name, allowed) for allowed in CTYPES_ALLOWED)] == []


def test_fcntl_is_used_nowhere():
    edges = graph()
    assert [name for name, targets in edges.items() if "fcntl" in targets] == []


def test_no_module_is_over_500_lines():
    lengths = {name: len(path.read_text().splitlines()) for name, path in sources().items()}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}
