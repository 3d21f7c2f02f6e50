"""The package installs in place: `import lesam` works from any folder, with the pinned dependencies."""

import os
import re
import subprocess
import sys
import tomllib

from conftest import ROOT


def requirement_lines(text: str) -> list[str]:
    """The `name==version` lines of a requirements file, comments dropped."""
    lines = (line.split("#")[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def test_pyproject_pins_what_requirements_txt_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    pinned = requirement_lines((ROOT / "requirements.txt").read_text())
    assert sorted(declared) == sorted(pinned)
    assert all(re.fullmatch(r"[\w.-]+==[\w.]+", line) for line in pinned)


def test_the_installed_package_is_this_checkout_and_imports_from_any_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only the installed package can be found
    code = "import lesam, lesam.optim; print(lesam.__file__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"lesam is not installed in this environment (pip install -e .): {result.stderr}"
    assert result.stdout.strip() == str(ROOT / "lesam" / "__init__.py")
