"""The README's exit-status table is the one the CLI uses (vmm/errors.py)."""
from vmm import paths
from vmm.errors import EXIT_STATUSES


def test_readme_lists_every_exit_status():
    readme = (paths.REPO_ROOT / "README.md").read_text()
    for status, meaning in EXIT_STATUSES:
        assert f"| {status} | {meaning} |" in readme, f"README's exit-status table lacks {status}"


def test_readme_lists_every_oci_runtime_exit_status():
    from vmm.oci.errors import EXIT_STATUSES as OCI_EXIT_STATUSES
    readme = (paths.REPO_ROOT / "README.md").read_text()
    for status, meaning in OCI_EXIT_STATUSES:
        assert f"| {status} | {meaning} |" in readme, f"README's vmm-oci exit-status table lacks {status}"
