"""Errors by kind, each with the exit status a command ends with (DESIGN: exit status of every command).

- :class:`UserError` (exit 2): a mistake in what the user gave us (a scenario, an option, a case file, an
  address), with where it is and why it is wrong; shown as one paragraph with no traceback.
- :class:`Fault` (exit 3): a device, the hardware or a service the run depends on failed while it ran (a
  device stopped answering under the ``abort`` policy, the platform stopped answering); shown as one
  paragraph naming what failed.
- A verdict that fails is not an exception: it is data (:mod:`testbed.domain.verdict`) whose
  :attr:`~testbed.domain.verdict.Verdict.exit_code` is 1.

Anything else that escapes is a bug in the testbed and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable

EXIT_OK = 0
EXIT_VERDICT_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_FAULT = 3


class _Explained(Exception):
    """An error shown to people as a summary and one line per problem."""

    exit_code = 1

    def __init__(self, summary: str, problems: Iterable[str] = ()) -> None:
        self.summary = summary
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        if not self.problems:
            return self.summary
        lines = [self.summary] + [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class UserError(_Explained):
    """A mistake in what the user gave us, with where it is and why it is wrong.

    ``problems`` holds one line per problem, each naming its place (a file path, a field path such as
    ``prosumers[3].battery.capacity_kwh``, a topic, a register) and the reason.
    """

    exit_code = EXIT_USER_ERROR


class Fault(_Explained):
    """A device, the hardware or a service failed during a run (exit 3); ``problems`` name what and where."""

    exit_code = EXIT_FAULT
