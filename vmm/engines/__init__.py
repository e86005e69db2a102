"""CPU engines behind one interface (base.Engine): KVM, and unicorn as the software engine.

Engines never import a device model, except that the software engine owns its interrupt
platform (the 8259A and 8254 models), as KVM owns its in-kernel one; devices never import an
engine. They meet in machine.py through the buses, the interrupt lines and the RunControl.
"""
