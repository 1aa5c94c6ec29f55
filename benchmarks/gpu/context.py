"""What a stage of the GPU check gets: its arguments, its time, and a results file kept current."""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON through a temporary file, so that a reader never sees half of it."""
    temporary = path.with_name(path.name + '.tmp')
    temporary.write_text(json.dumps(data, indent=1, default=str) + '\n')
    os.replace(temporary, path)


@dataclass
class StageContext:
    """One stage's arguments, time and results.

    Attributes:
        name: the stage's name.
        args: the command line of ``check.py``.
        out_dir: where the stage may write logs next to the report.
        path: the stage's results file, rewritten by :meth:`save`.
        plan_deadline: ``time.monotonic()`` by which the stage should be done; it is killed a
            little later.
        results: what the stage measured: plain values, and the keys ``tables``, ``goals`` and
            ``failed_checks`` that the report reads.
    """

    name: str
    args: argparse.Namespace
    out_dir: Path
    path: Path
    plan_deadline: float
    results: dict = field(default_factory=dict)

    @property
    def device(self) -> str:
        """'cuda' or 'cpu'."""
        return self.args.device

    def left(self) -> float:
        """Seconds until :attr:`plan_deadline` (negative once it has passed)."""
        return self.plan_deadline - time.monotonic()

    def save(self) -> None:
        """Write the results so far; a stage killed at its budget keeps them."""
        write_json(self.path, self.results)

    def put(self, key: str, value: Any) -> None:
        """Record one figure (or structure of figures) and save."""
        self.results[key] = value
        self.save()

    def fail(self, message: str) -> None:
        """Record a failed correctness check; the stage ends as 'failed' but keeps running."""
        self.results.setdefault('failed_checks', []).append(message)
        self.save()

    def goal(self, goal: str, measured: str, met: bool | None) -> None:
        """Record one goal of the issue (reported, not asserted); ``met`` None: not measurable."""
        self.results.setdefault('goals', []).append(dict(goal=goal, measured=measured, met=met))
        self.save()

    def table(self, title: str, header: list[str], rows: list[list[Any]]) -> None:
        """Record a table for the markdown report; replaces an earlier table of that title."""
        tables = self.results.setdefault('tables', [])
        tables[:] = [table for table in tables if table['title'] != title]
        tables.append(dict(title=title, header=header, rows=rows))
        self.save()
