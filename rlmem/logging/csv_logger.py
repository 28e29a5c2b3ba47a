"""``progress.csv`` in the run directory: one row per iteration."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping

from .base import Logger


class CSVLogger(Logger):
    """Writes rows as they come; when a new metric appears the file is rewritten with it as a column.

    ``resume_step``: continue an existing file, keeping its rows up to that step (the rows an
    interrupted run wrote after its last checkpoint are dropped: the resumed run writes them again).
    """

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fields: list[str] = ["step"]
        self.rows: list[dict] = []
        self.file = None
        self.writer = None
        if resume_step is not None and self.path.is_file():
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.fields = list(reader.fieldnames or ["step"])
                self.rows = [row for row in reader if row.get("step", "").isdigit() and int(row["step"]) <= resume_step]
            self._open()

    def _open(self) -> None:
        if self.file:
            self.file.close()
        self.file = self.path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.fields)
        self.writer.writeheader()
        self.writer.writerows(self.rows)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        row = {"step": step, **metrics}
        new = [k for k in row if k not in self.fields]
        self.rows.append(row)
        if new or self.writer is None:
            self.fields += new
            self._open()
        else:
            self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        if self.file:
            self.file.close()
            self.file = None
