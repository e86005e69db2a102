"""Seeing inside the guest: register dumps and crash reports."""
