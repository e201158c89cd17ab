"""Scenario files: schema (pure models), reading, and expansion into the prosumers a run simulates."""

from testbed.domain.scenario.models import SCHEMA_VERSION, Scenario

__all__ = ["SCHEMA_VERSION", "Scenario"]
