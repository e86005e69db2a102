"""`vmm bench exits --nested`: the same benchmark inside a KVM with hardware semantics.

The nested guest is the test suite's (tests/nested/nested_kvm.py: Debian's kernel with
kvm_amd, in QEMU's TCG emulating AMD SVM; `make nested-image` builds it once). The benchmark
runs there whole, with its baseline, so both rows are measured on that KVM in the same run.
It needs this source checkout; the guest sees it read-only over 9p.
"""
import subprocess
import sys

from .. import paths
from ..errors import AcceleratorUnavailable

RUNNER = paths.REPO_ROOT / "tests" / "nested" / "nested_kvm.py"


def main(vmm_args) -> int:
    """Run `vmm VMM_ARGS` in the nested guest, its output on ours; its exit status."""
    if not RUNNER.exists():
        raise AcceleratorUnavailable(f"--nested needs the source checkout's {RUNNER.relative_to(paths.REPO_ROOT)}")
    print("in a nested kvm_amd (QEMU TCG emulating AMD SVM; tests/nested/nested_kvm.py):", flush=True)
    venv_python = paths.REPO_ROOT / ".venv" / "bin" / "python"
    python = str(venv_python if venv_python.exists() else sys.executable)
    return subprocess.run([sys.executable, str(RUNNER), "--quiet", "run", "--", python, "-m", "vmm", *vmm_args],
                          cwd=paths.REPO_ROOT).returncode
