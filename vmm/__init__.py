"""A small hosted VMM on Linux KVM, with a unicorn software engine where KVM is missing."""
from .config import MachineConfig
from .errors import VmmError
from .machine import Machine, RunResult

__all__ = ["Machine", "MachineConfig", "RunResult", "VmmError"]
