"""CPU engines behind one interface (base.Engine): KVM, and unicorn as the software engine.

Engines never import a device; devices never import an engine. They meet in machine.py
through the buses and the RunControl.
"""
