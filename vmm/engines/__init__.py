"""CPU engines behind one interface (base.Engine, and base.EngineDebug for debuggers).

    kvm.py            KvmEngine: /dev/kvm, its VM-exit loop; kvm_setup.py, kvm_state.py,
                      kvm_halt.py, kvm_debug.py around it
    unicorn.py        UnicornEngine, the software engine, its run loop; the modules it names
                      (unicorn_exits.py, x86_delivery.py, pc_platform.py, host_timers.py,
                      unicorn_code_cache.py, unicorn_state.py, unicorn_binding.py,
                      unicorn_layout.py, unicorn_debug.py)

Engines never import a device model, except that the software engine owns its interrupt
platform (pc_platform.py: the 8259A and 8254 models), as KVM owns its in-kernel one; devices
never import an engine. They meet in machine.py through the buses, the interrupt lines and
the RunControl.
"""
