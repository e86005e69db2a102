"""Device models. They know nothing of CPU engines: they are reached through a Bus and
raise interrupts through a callback handed to them by machine.py."""
