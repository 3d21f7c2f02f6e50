"""The README's Python example runs as written, every relative link of the docs points to a file, and the
README and `make help` state the same times."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # [text](target)
HEADING = re.compile(r"^#+\s+(.*)$", re.M)


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of a Markdown text."""
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def prose(page: Path) -> str:
    """The text of a Markdown page without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)


def relative_links(page: Path) -> list[str]:
    """The link targets of `page` that are not web addresses."""
    return [t for t in LINK.findall(prose(page)) if not re.match(r"[a-z]+:", t)]


def test_readme_python_example_runs(tmp_path: Path) -> None:
    """Each ```python block of README.md runs in a fresh interpreter without raising."""
    blocks = python_blocks(README.read_text())
    assert blocks, "README.md has no ```python block: the optimizers' example is gone"
    for i, code in enumerate(blocks):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, f"README's python block {i + 1} failed:\n{done.stderr[-3000:]}"


def test_readme_links_every_docs_page() -> None:
    """Every page under docs/ is reachable from the README."""
    linked = {(ROOT / t.split("#")[0]).resolve() for t in relative_links(README)}
    missing = [p.name for p in PAGES if p.resolve() not in linked]
    assert PAGES and not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    """Each relative link names a file that exists, and its #anchor a heading of that file."""
    broken = []
    for target in relative_links(page):
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and file.suffix == ".md" and fragment not in map(anchor, HEADING.findall(prose(file))):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.name}: broken links: {broken}"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", ["demo", "test"])
def test_readme_and_make_help_give_the_same_time_on_idle_and_on_shared_cores(target: str) -> None:
    """The measured time holds on idle cores only: both say so, with the time when other work shares them."""
    time = r"about \d+ minutes on two idle cores \(about \d+ when other work shares them\)"
    in_readme = re.search(rf"`make {target}` in ({time})", README.read_text().replace("\n", " "))
    shown = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    in_help = re.search(rf"^  make {target} .*?({time})$", shown, re.M)
    assert in_readme and in_help, (in_readme, in_help)
    assert in_readme.group(1) == in_help.group(1)
