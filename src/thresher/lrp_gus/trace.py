"""Checkpointing a search into a directory: ``trace.parquet`` + ``state.json``, atomically.

The trace is written before the state, so a kill between the two leaves a state that points
at records the trace holds; a resume truncates the trace to the state's iteration count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thresher.errors import RunError
from thresher.lrp_gus.search import IterationRecord, SearchSettings, SearchState
from thresher.store import atomic_path, atomic_write_text, dumps

TRACE = "trace.parquet"
STATE = "state.json"


class DirCheckpoint:
    """A search checkpoint in ``directory`` for ``settings`` (plus ``context``, e.g. the data).

    Loading refuses a checkpoint made with other settings or context (only ``iterations`` may
    differ, so a finished search can be continued with a larger ``Nmax``).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        settings: SearchSettings,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self.context = dict(context or {})

    @property
    def exists(self) -> bool:
        return (self.directory / STATE).is_file()

    def _key(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in settings.items() if k != "iterations"}

    def load(self) -> tuple[SearchState, list[IterationRecord]] | None:
        path = self.directory / STATE
        if not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RunError(
                f"{path} is unreadable ({err}); delete {self.directory} to restart"
            ) from err
        mine = json.loads(dumps({"s": self._key(self.settings.to_dict()), "c": self.context}))
        theirs = {"s": self._key(stored.get("settings", {})), "c": stored.get("context", {})}
        if mine != theirs:
            diff = sorted(
                k
                for k in set(mine["s"]) | set(theirs["s"])
                if mine["s"].get(k) != theirs["s"].get(k)
            ) or sorted(
                k
                for k in set(mine["c"]) | set(theirs["c"])
                if mine["c"].get(k) != theirs["c"].get(k)
            )
            raise RunError(
                f"the search stored in {self.directory} used other settings ({', '.join(diff)}); "
                "resume with the same settings or restart the search"
            )
        state = SearchState(
            next_iteration=int(stored["state"]["next_iteration"]),
            counts=tuple(stored["state"]["counts"]),
            f_prev=tuple(stored["state"]["f_prev"]),
            stop_reason=str(stored["state"]["stop_reason"]),
        )
        records = read_trace(self.directory / TRACE) if state.next_iteration else []
        if len(records) < state.next_iteration:
            raise RunError(
                f"{self.directory / TRACE} holds {len(records)} iterations but the state says "
                f"{state.next_iteration}; delete {self.directory} to restart the search"
            )
        return state, records[: state.next_iteration]

    def save(self, state: SearchState, records: Sequence[IterationRecord]) -> None:
        write_trace(self.directory / TRACE, records)
        atomic_write_text(
            self.directory / STATE,
            dumps(
                {
                    "settings": self.settings.to_dict(),
                    "context": self.context,
                    "state": state.to_dict(),
                }
            ),
        )


def write_trace(path: Path, records: Sequence[IterationRecord]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = list(IterationRecord.__dataclass_fields__)
    rows = [r.to_dict() for r in records]
    columns = {n: [row[n] for row in rows] for n in names}
    types = {
        "counts": pa.list_(pa.int64()),
        "new_counts": pa.list_(pa.int64()),
        "f1": pa.list_(pa.float64()),
        "f": pa.list_(pa.float64()),
        "delta_f": pa.list_(pa.float64()),
        "baseline_f1": pa.list_(pa.float64()),
        "allowed": pa.list_(pa.bool_()),
        "iteration": pa.int64(),
        "size": pa.int64(),
        "chosen": pa.int64(),
        "seed": pa.int64(),
        "compression": pa.float64(),
        "accuracy": pa.float64(),
        "seconds": pa.float64(),
        "baseline_accuracy": pa.float64(),
        "action": pa.string(),
        "stop_reason": pa.string(),
    }
    table = pa.table({n: pa.array(columns[n], type=types[n]) for n in names})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_trace(path: Path) -> list[IterationRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        return []
    # one read of the bytes: pyarrow may open the path more than once, and a concurrent atomic
    # replace (a search writing while a reader polls) must not mix two versions of the file
    table = pq.read_table(pa.BufferReader(path.read_bytes())).to_pydict()
    n = len(next(iter(table.values()), []))
    return [IterationRecord.from_dict({k: v[i] for k, v in table.items()}) for i in range(n)]
