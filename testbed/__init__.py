"""Federated power plant testbed: co-simulation and hardware in the loop.

``testbed.run(scenario, overrides=..., out=...)`` runs a scenario and returns its folder, KPIs and verdict
(:mod:`testbed.orchestration.api`). The packages: ``testbed.domain`` (pure), ``testbed.platform`` (the MQTT
platform), ``testbed.orchestration`` (runs), ``testbed.cli`` (the ``fpp`` command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from testbed.orchestration.runner import RunResult

__version__ = "0.1.0"


def run(scenario: Any, **kwargs: Any) -> RunResult:
    """Run a scenario (see :func:`testbed.orchestration.api.run`)."""
    from testbed.orchestration.api import run as _run

    return _run(scenario, **kwargs)
