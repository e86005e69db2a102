"""ACPI tables for the guest: a small AML encoder (aml.py) and the tables (tables.py)."""
