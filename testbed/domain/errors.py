"""Errors a user can cause and fix, shown by the CLI as one paragraph with no traceback.

Library code raises these for bad input (a scenario, a case file, a message, a register value); anything
else that escapes is a bug in the testbed and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class UserError(Exception):
    """A mistake in what the user gave us, with where it is and why it is wrong.

    ``problems`` holds one line per problem, each naming its place (a file path, a field path such as
    ``prosumers[3].battery.capacity_kwh``, a topic, a register) and the reason.
    """

    def __init__(self, summary: str, problems: Iterable[str] = ()) -> None:
        self.summary = summary
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        if not self.problems:
            return self.summary
        lines = [self.summary] + [f"  - {p}" for p in self.problems]
        return "\n".join(lines)
