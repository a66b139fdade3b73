"""Benchmarks: measured on the machine, reported with the command that produced them."""
