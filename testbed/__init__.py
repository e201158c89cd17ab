"""Federated power plant testbed: domain logic, platform, orchestration and CLI."""

__version__ = "0.1.0"
