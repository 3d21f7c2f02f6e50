"""Data sets, splits and loaders."""

from lesam.data.datasets import DATASETS, DataSplits, build_data

__all__ = ["DATASETS", "DataSplits", "build_data"]
