"""The package's layers: each module imports only its own sub-package and the layers below it.

core -> optim, data, models -> methods -> engine -> analysis -> report (then train.py, analyze.py
and scripts/, which may import anything). Imports inside functions and TYPE_CHECKING blocks count.
"""

import ast

import pytest

from conftest import ROOT

LAYERS = {"core": 0, "optim": 1, "data": 1, "models": 1, "methods": 2, "engine": 3, "analysis": 4, "report": 5}
PACKAGE = ROOT / "lesam"


def imported_subpackages(source: str) -> set[str]:
    """The lesam sub-packages a module's source imports from."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] if node.module != "lesam" else [f"lesam.{a.name}" for a in node.names]
        found.update(n.split(".")[1] for n in names if n.startswith("lesam.") and n.count(".") >= 1)
    return found


def violations(layer: str, source: str) -> set[str]:
    """The sub-packages `source`, a module of `layer`, imports although they are not below it."""
    return {other for other in imported_subpackages(source) if other != layer and LAYERS[other] >= LAYERS[layer]}


def test_every_subpackage_has_a_layer():
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages == set(LAYERS)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_at_or_above_its_own(path):
    relative = path.relative_to(PACKAGE)
    if len(relative.parts) == 1:  # lesam/__init__.py
        assert imported_subpackages(path.read_text()) == set()
        return
    layer = relative.parts[0]
    assert violations(layer, path.read_text()) == set(), f"{relative} imports a layer that is not below {layer}"


def test_the_check_sees_every_kind_of_import():
    source = """
import lesam.engine.trainer
from lesam.report import plan
from lesam import analysis
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from lesam.methods.base import Method
def f():
    from lesam.data import build_data
"""
    assert imported_subpackages(source) == {"engine", "report", "analysis", "methods", "data"}
    assert violations("optim", source) == {"engine", "report", "analysis", "methods", "data"}
    assert violations("report", source) == set()
    assert violations("methods", "from lesam.methods.batch import Batch\nfrom lesam.optim import SAM") == set()
