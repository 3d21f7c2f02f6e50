"""Where the project's own files are: the project folder, and the configs that train.py composes."""

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]  # the package is installed in place (pip install -e .)
CONFIGS = PROJECT / "configs"
