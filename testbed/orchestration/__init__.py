"""Orchestration: builds a mosaik world from a scenario, runs it, writes the run folder and its report.

It imports the domain and the adapters; nothing imports it (tests/test_layers.py checks it).
"""
