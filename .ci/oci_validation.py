"""Run the runtime-spec's validation suite (opencontainers/runtime-tools, validation/) against
runc and vmm-oci, and print how many checks pass for each, test by test.

    make oci-validation RUNTIME_TOOLS=/path/to/a/runtime-tools/checkout

The sources are not part of this project: give a checkout (a clone, or `fetch`'s mirror). They
are copied under build/runtime-tools and built there with the machine's Go; runtime-tools after
March 2025 needs Go 1.21, so with Debian 12's Go 1.19 the commit RUNTIME_TOOLS_COMMIT (default
260e151, the last that builds with it) is checked out in the copy. Each runtime gets its own
state directory (a wrapper adds --root) and whatever a test leaves there is deleted afterwards
and reported. A test "passes" when its TAP output has at least one `ok` and no `not ok` (a test that
fails before its first check prints only a YAML diagnostic, and so does not pass).
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "runtime-tools"
OUT = REPO / "build" / "oci-validation"
DEFAULT_COMMIT = "260e151"
TEST_TIMEOUT = 180


def build(source: Path, commit: str) -> Path:
    if BUILD.exists():
        shutil.rmtree(BUILD)
    subprocess.run(["git", "clone", "--quiet", str(source), str(BUILD)], check=True)
    if commit:
        subprocess.run(["git", "-C", str(BUILD), "checkout", "--quiet", commit], check=True)
    subprocess.run(["make", "-C", str(BUILD), "runtimetest", "validation-executables"], check=True,
                   stdout=subprocess.DEVNULL)
    return BUILD


def wrapper(name: str, command: list) -> Path:
    """A runtime command with its own --root, as RUNTIME (the suite takes one word)."""
    state = OUT / name / "state"
    state.mkdir(parents=True, exist_ok=True)
    path = OUT / name / "runtime"
    path.write_text("#!/bin/sh\nexec " + " ".join(command) + f" --root {state} \"$@\"\n")
    path.chmod(0o755)
    return path


def run_suite(tools: Path, name: str, command: list) -> dict:
    runtime = wrapper(name, command)
    results = {}
    for test in sorted(tools.glob("validation/*/*.t")):
        try:
            tap = subprocess.run([str(test)], cwd=tools, env=dict(os.environ, RUNTIME=str(runtime)),
                                 capture_output=True, text=True, timeout=TEST_TIMEOUT).stdout
        except subprocess.TimeoutExpired as error:
            tap = (error.stdout or b"").decode(errors="replace") + "\nnot ok - timed out\n"
        (OUT / name / f"{test.stem}.tap").write_text(tap)
        ok = len(re.findall(r"^ok\b", tap, re.M))
        not_ok = len(re.findall(r"^not ok\b", tap, re.M))
        results[test.stem] = (ok, not_ok, ok > 0 and not_ok == 0)
    leftovers = sorted(os.listdir(OUT / name / "state"))
    for container in leftovers:
        subprocess.run([str(runtime), "delete", "--force", container], capture_output=True)
    results["(containers the suite left behind)"] = (len(leftovers), 0, not leftovers)
    return results


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: oci_validation.py RUNTIME_TOOLS_CHECKOUT [COMMIT]", file=sys.stderr)
        return 64
    commit = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_COMMIT
    tools = build(Path(sys.argv[1]).resolve(), commit)
    runtimes = {"runc": [shutil.which("runc") or "runc"], "vmm-oci": [str(REPO / ".venv" / "bin" / "vmm-oci")]}
    results = {name: run_suite(tools, name, command) for name, command in runtimes.items()}
    names = list(runtimes)
    print(f"{'test':<34}" + "".join(f"{n + ' ok/not ok':>22}" for n in names))
    for test in results[names[0]]:
        row = "".join(f"{results[n][test][0]:>14}/{results[n][test][1]:<3}{'pass' if results[n][test][2] else 'FAIL':>5}"
                      for n in names)
        print(f"{test:<34}{row}")
    for name in names:
        rows = [r for t, r in results[name].items() if not t.startswith("(")]
        print(f"{name}: {sum(r[0] for r in rows)} checks ok, {sum(r[1] for r in rows)} not ok; "
              f"{sum(r[2] for r in rows)} of {len(rows)} tests pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
