"""Errors a technician sees: one clear sentence each, never a traceback."""

from __future__ import annotations


class ProvisionError(Exception):
    """The district directory, an input file or the state of a station does not allow the operation: exit 1."""


class InputErrors(ProvisionError):
    """Several problems found in one input (e.g. an inventory CSV); all are reported at once."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n" + "\n".join(f"  {p}" for p in self.problems))
