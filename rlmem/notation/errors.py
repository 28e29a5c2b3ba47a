"""Errors that point into a spec: ``file:line:col: message``, the source line, and a caret."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A stretch of one source line: 1-based ``line`` and ``col``, ``end`` the column after it."""

    line: int
    col: int
    end: int

    def join(self, other: "Span") -> "Span":
        if other.line != self.line:
            return self
        return Span(self.line, min(self.col, other.col), max(self.end, other.end))


class NotationError(ValueError):
    """A spec that cannot be parsed or compiled. ``str(err)`` is three lines::

        my_cell.arrow:4:9: undefined name q_t
            x_t|q_t --[M|tanh]-> h_t
                ^^^
    """

    def __init__(self, message: str, file: str = "<spec>", span: Span | None = None,
                 source_line: str | None = None):
        self.message, self.file, self.span, self.source_line = message, file, span, source_line
        super().__init__(self.render())

    @property
    def location(self) -> str:
        if self.span is None:
            return self.file
        return f"{self.file}:{self.span.line}:{self.span.col}"

    def render(self) -> str:
        head = f"{self.location}: {self.message}"
        if self.span is None or self.source_line is None:
            return head
        line = self.source_line.rstrip("\n")
        # keep tabs so the caret lines up under tab-indented text
        pad = "".join(c if c == "\t" else " " for c in line[: self.span.col - 1])
        width = max(1, min(self.span.end, len(line) + 1) - self.span.col)
        return f"{head}\n    {line}\n    {pad}{'^' * width}"


class Source:
    """The text of a spec and its name, for errors that quote it."""

    def __init__(self, text: str, file: str = "<spec>"):
        self.text, self.file = text, file
        self.lines = text.splitlines()

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""

    def snippet(self, span: Span) -> str:
        return self.line(span.line)[span.col - 1: span.end - 1]

    def error(self, message: str, span: Span | None = None) -> NotationError:
        return NotationError(message, self.file, span, self.line(span.line) if span else None)
