"""x86 facts: descriptor formats, control-register bits, boot protocols, CPUID."""
