"""Reads an offline W&B run back from its ``run-<id>.wandb`` file (LevelDB log blocks of protobuf
``Record`` messages), so tests can check what a run logged without a network or W&B's servers."""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

BLOCK = 32768
HEADER = 7  # the file's own header (":W&B", magic, version), then LevelDB log records


def _raw_records(data: bytes) -> Iterator[bytes]:
    pos, pending = HEADER, b""
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a record header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pos += 7
        chunk, pos = data[pos:pos + length], pos + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk
            pending = b""


def _items(items: Any) -> dict[str, Any]:
    """``{key: value}`` of history or summary items; a nested key (an image's ``_type``, ``path``,
    ...) becomes a dict under its first part."""
    out: dict[str, Any] = {}
    for item in items:
        keys = [item.key] if item.key else list(item.nested_key)
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = json.loads(item.value_json)
    return out


@dataclass
class OfflineRun:
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per logged step
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    files: Path | None = None
    finished: bool = False  # the run's exit record is in the file


def read_offline_run(run_folder: Path, timeout: float = 60.0) -> OfflineRun:
    """The history rows, final summary and config of an offline run folder (``offline-run-*``).

    W&B's service may still be writing the file when ``run.finish()`` has returned: this waits up
    to ``timeout`` seconds for the run's exit record."""
    deadline = time.monotonic() + timeout
    while True:
        run = _read(run_folder)
        if run.finished or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


def _read(run_folder: Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_folder.glob("run-*.wandb")
    run = OfflineRun(files=run_folder / "files")
    for raw in _raw_records(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "summary":
            run.summary.update(_items(record.summary.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
        elif kind == "exit":
            run.finished = True
        elif kind == "run":  # the run record carries the config given to wandb.init
            run.config.update(_items(record.run.config.update))
    return run
