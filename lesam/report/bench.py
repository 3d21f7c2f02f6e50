"""Table 6's numbers: seconds per epoch from the JSON that the speed benchmark (scripts/bench.py) writes."""

from __future__ import annotations

import json
from pathlib import Path

from lesam.core.errors import UserError

IDENTITY = ("model", "optimizer")
MEASURE = "s_per_epoch"


def read_bench(path: Path) -> dict[tuple[str, str], dict[str, float]]:
    """(model, optimizer) -> {setting: seconds per epoch} from a benchmark JSON.

    The JSON is a list of records (or {"records": [...]}), each with `model`, `optimizer` and `s_per_epoch`;
    the record's other text and boolean fields name its setting (e.g. path=gpu). Records
    of steps split into micro-batches (`accumulation_steps` > 1) or of several runs sharing the device
    (`processes` > 1) are left out: Table 6 times one run's whole batches.
    """
    data = json.loads(Path(path).read_text())
    records = data.get("records") if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise UserError(f"'{path}' holds no list of benchmark records; expected a list or {{\"records\": [...]}}")
    measured: dict[tuple[str, str], dict[str, float]] = {}
    for record in records:
        missing = [k for k in (*IDENTITY, MEASURE) if k not in record]
        if missing:
            raise UserError(f"a record of '{path}' lacks {', '.join(missing)}: {record}")
        if record.get("accumulation_steps", 1) != 1 or record.get("processes", 1) != 1:
            continue
        setting = ", ".join(f"{k}={v}" for k, v in record.items() if k not in IDENTITY and isinstance(v, str | bool))
        measured.setdefault((record["model"], record["optimizer"]), {})[setting] = float(record[MEASURE])
    return measured


def bench_status(path: Path) -> str | None:
    """Why Table 6 has no numbers of ours yet, or None when the benchmark's JSON is there."""
    if Path(path).is_file():
        return None
    return f"No measurements of ours: no benchmark JSON at '{path}'; run `make bench` and pass BENCH=<its JSON>."
