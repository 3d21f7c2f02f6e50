"""Run folders in, tables and figures out: results are computed from files, never typed in."""

from lesam.report.runs import load_runs

__all__ = ["load_runs"]
