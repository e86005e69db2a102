"""Snapshots: a VM saved to a directory, and restored from it on either engine.

    manifest.py     the versioned, checksummed JSON manifest: configuration, vCPU, devices
    memory_file.py  guest RAM: written sparsely (or only the dirty pages), mapped MAP_PRIVATE back
    save.py         Machine.snapshot: pause, capture, write, resume
    load.py         Machine.restore: open and check a snapshot, rebuild the VM from it

The state itself is engine-neutral (arch/x86/cpu_snapshot.py for the vCPU, the device models'
save_state/load_state, devices/state.py), so a VM saved on KVM resumes on unicorn and back.
Nothing here is imported by a plain `vmm run`: the machine imports it when first asked.
"""
