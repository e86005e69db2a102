# Two commands do all the set-up on a fresh machine (see README):
#   make run    builds everything and boots the default guest (hello)
#   make test   builds everything and runs the test suite
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all build venv bytecode launcher toolchain guest firmware run test test-tools bench peers clean \
	test-nested nested-image nested-tools dist

all: build
build: venv bytecode launcher guest firmware

# The venv holds the package (editable) with its test extras. The "compat" editable mode is a
# plain path in a .pth file: the default mode installs an import finder that adds about 13 ms
# to every `vmm` command's start-up, which bench startup measures.
venv: $(STAMP)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $@

# The `vmm` command: pip's console script replaced by vmm/launcher.py's, which starts Python
# with -I -S (no site, no .pth files, no PYTHON* variables): about 3 ms less per command.
launcher: $(STAMP)
	$(VPY) -m vmm.launcher $(VENV)/bin/vmm

# Byte-compile the package once: where PYTHONDONTWRITEBYTECODE is set (as on these machines),
# every `vmm` command would otherwise recompile it, about 40 ms of each start-up.
bytecode: $(STAMP)
	$(VPY) -m compileall -q vmm

# The guest is built with the machine's gcc and binutils; the test root file system with
# Debian's static glibc (libc6-dev), musl-gcc (musl-tools), busybox-static and golang-go (the
# Go test program). Install them if missing.
toolchain:
	@command -v gcc >/dev/null && command -v as >/dev/null && command -v ld >/dev/null && command -v objcopy >/dev/null \
	  && command -v musl-gcc >/dev/null && test -e /usr/lib/x86_64-linux-gnu/libc.a && command -v go >/dev/null \
	  && dpkg-query -W -f='$${Status}' busybox-static 2>/dev/null | grep -q "ok installed" \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc binutils make \
	       libc6-dev musl-tools busybox-static golang-go; }

guest: toolchain
	$(MAKE) -C guest

firmware: toolchain
	$(MAKE) -C firmware

run: build
	$(VENV)/bin/vmm run

test: build test-tools
	$(VPY) -m pytest -q

# What the tests drive besides the VMM: the real gdb (the stub's tests), valgrind (counting
# instructions for bench engines), a static libc (the container tests build programs), iasl
# (acpica-tools: the ACPI tests disassemble our tables), mkfs.ext4 (the Linux disk test) and the
# real strace (--strace is checked against it).
test-tools:
	@command -v gdb >/dev/null && command -v valgrind >/dev/null && test -e /usr/lib/x86_64-linux-gnu/libc.a \
	  && command -v iasl >/dev/null && command -v mkfs.ext4 >/dev/null && command -v strace >/dev/null \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdb valgrind libc6-dev \
	       acpica-tools e2fsprogs strace; }

# A wheel and an sdist in dist/ (DIST=... elsewhere), with the standard `build` frontend: it
# makes the sdist, then the wheel from it, whose setup.py builds the guest kernel, programs and
# firmware from the sdist's sources into the package (vmm/_artefacts). x86-64 Linux only.
DIST ?= dist
dist: venv toolchain
	$(VPY) -m build --outdir $(DIST) .

bench: build
	$(VENV)/bin/vmm bench exits

# The KVM engine's tests (`pytest -m kvm`) again, on a KVM with hardware semantics: kvm_amd in
# a QEMU TCG guest emulating AMD SVM, one boot for the whole selection (tests/nested/nested_kvm.py).
# Its kernel is Debian's linux-image-amd64, fetched with `apt-get download` into build/nested
# once (nothing is installed into /boot); the guest sees this checkout read-only over 9p, so the
# guest programs are built here first. Fails if a test fails or the environment is broken (the
# runner's own tests first check that a guest CPU without SVM is reported as such).
test-nested: build test-tools nested-image
	NESTED_BOOT_TESTS=1 $(VPY) -m pytest -q tests/test_nested_runner.py
	$(VPY) tests/nested/nested_kvm.py pytest

nested-image: nested-tools
	$(PYTHON) tests/nested/nested_kvm.py image

# What the nested run needs on the host: QEMU (TCG) and a static busybox for its initramfs.
nested-tools:
	@command -v qemu-system-x86_64 >/dev/null && dpkg -s busybox-static >/dev/null 2>&1 \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-x86 busybox-static; }

# Real peers for oracle tests and benchmarks (tests that need them skip without them):
# QEMU, the OCI runtimes crun and runc that `vmm bench startup` compares against, and podman
# (with conmon) and busybox-static, with which the OCI runtime's tests drive vmm-oci as podman does.
PEER_PACKAGES := qemu-system-x86 crun runc podman conmon busybox-static
peers:
	@command -v qemu-system-x86_64 >/dev/null && command -v crun >/dev/null && command -v runc >/dev/null \
	  && command -v podman >/dev/null && command -v conmon >/dev/null && dpkg -s busybox-static >/dev/null 2>&1 \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(PEER_PACKAGES); }

clean:
	$(MAKE) -C guest clean
	$(MAKE) -C firmware clean
	rm -rf $(VENV) *.egg-info dist
