"""Benchmarks (`vmm bench NAME`), each with its baseline measured in the same run.

    harness.py     rows, interleaved runs, unavailable and failed rows, progress, summaries,
                   tables and bars, JSON output, the machine's description
    process.py     starting processes: the C spawner (spawn-to-reap time, peak RSS), this
                   process's RSS
    exits.py       port-I/O exits per second: the VMM against a bare KVM_RUN loop
    startup.py     `hello` started as a VM (vmm, QEMU), a container (vmm, crun, runc), a process
    density.py     N VMs at once (threads, processes) against N containers
    interrupts.py  a sleeping guest's host CPU, timer interrupts delivered per engine
    engines.py     the unicorn engine against bare unicorn, QEMU TCG, KVM and the host
                   (its compute part: engines_compute.py)
    boot.py        firmware against direct PVH boot; fw_cfg with and without DMA
    blk.py         virtio-blk throughput from a guest against the host and QEMU
"""
