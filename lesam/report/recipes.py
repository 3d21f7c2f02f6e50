"""What each cell of a paper table trains with (`make recipes TABLE=...`), and where each value comes from.

A value's source is written next to it in the config file that sets it: a `# source: ...` comment on
its line, or else a `# source: ...` line in the file's header, which covers the file's other values.
A value no source gives is marked `# assumed: <what and why>` instead, and listed so.
Hydra's defaults list says which file sets a value last; a value the table's cell sets on the command
line comes from the table itself (lesam/report/tables.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf

from lesam.core.paths import CONFIGS
from lesam.core.run_id import semantic_config
from lesam.report.plan import Composer
from lesam.report.spec import Table

LABELS = ("dataset.name", "model.name", "optimizer.name", "method.name")  # a row's name, not a column
NOT_RECIPE = {"seed", "output_root", "dataset.num_classes", "recipe_variant", *LABELS}
METHOD = ("optimizer.", "method.")  # a cell's method values: listed whatever sets them
CELL = "the table's cell (lesam/report/tables.py)"
SOURCE = re.compile(r"#\s*(source|assumed):\s*(.+)$")  # where a value comes from, or what was assumed and why
KEY = re.compile(r"^(\s*)([A-Za-z_][\w-]*):(.*)$")


@dataclass(frozen=True)
class Setting:
    """One value of a cell's config, the file that sets it last and the source that file names."""

    value: object
    file: str | None  # a config path (e.g. recipe/model/resnet18), "command line", or None (no file sets it)
    source: str | None


def leaves(node: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(dotted key, value) of every leaf of a nested dict."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix, node


def source_text(line: str) -> str | None:
    """The source a config line names ('assumed: ...' for an assumption), or None."""
    found = SOURCE.search(line)
    if found is None:
        return None
    kind, text = found.group(1), found.group(2).strip()
    return f"assumed: {text}" if kind == "assumed" else text


def file_sources(path: Path) -> tuple[str | None, dict[str, str]]:
    """A config file's header source and the source of each dotted key that names its own."""
    header, own, stack = None, {}, []
    for line in path.read_text().splitlines():
        found = source_text(line)
        match = KEY.match(line)
        if match is None:
            if found and not stack and header is None:
                header = found
            continue
        indent, key = len(match.group(1)), match.group(2)
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, key)]
        if found:
            own[".".join(k for _, k in stack)] = found
    return header, own


def file_settings(config_path: str, package: str) -> dict[str, str | None]:
    """Each dotted key (under `package`) that a config file sets, with its source."""
    path = CONFIGS / f"{config_path}.yaml"
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    node.pop("defaults", None)
    header, own = file_sources(path)
    prefix = f"{package}." if package else ""
    return {prefix + key: own.get(key, header) for key, _ in leaves(node)}


def cell_settings(composer: Composer, overrides: Sequence[str]) -> dict[str, Setting]:
    """Every recipe value of the run that `overrides` make, with the file that sets it and its source."""
    values = dict(leaves(semantic_config(composer.compose(overrides))))
    loader = GlobalHydra.instance().config_loader()
    defaults = loader.compute_defaults_list(config_name="config", overrides=list(overrides), run_mode=RunMode.RUN)
    origin: dict[str, tuple[str, str | None]] = {}
    for entry in defaults.defaults:
        if entry.config_path is None or entry.config_path.startswith("hydra/"):
            continue
        for key, source in file_settings(entry.config_path, entry.package).items():
            origin[key] = (entry.config_path, source)
    for override in defaults.overrides.config_overrides:
        origin[override.key_or_group] = ("command line", CELL)
    return {
        key: Setting(value, *origin.get(key, (None, None))) for key, value in values.items() if key not in NOT_RECIPE
    }


def columns(cells: list[dict[str, Setting]]) -> list[str]:
    """The training keys (not the model's shape): every method value (optimizer and method), and the others
    that take different values in the cells that have them or that a recipe file sets for some cell."""
    keys = [k for k in dict.fromkeys(k for cell in cells for k in cell) if not k.startswith("model.")]
    varying = {k for k in keys if len({repr(cell[k].value) for cell in cells if k in cell}) > 1}
    recipe = {k for k in keys for cell in cells if k in cell and (cell[k].file or "").startswith("recipe/")}
    return [k for k in keys if k in varying | recipe or k.startswith(METHOD)]


def column_names(keys: list[str]) -> dict[str, str]:
    """A key's last part where that is unique among `keys`, else the whole dotted key."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: name if last.count(name) == 1 else k for k, name in zip(keys, last, strict=True)}


def show(value: object) -> str:
    """A value as the config would spell it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def recipe_table(table: Table, composer: Composer, sources: bool = False, variant: str = "paper") -> str:
    """Markdown: a row per run of `table` (dataset, model, method), a column per recipe value; with `sources`,
    then each column's values with where they come from, and for a variant other than the paper's, each value
    it changes with both sources."""
    chosen = table.variant_overrides(variant)
    cells = [(o + chosen, cell_settings(composer, o + chosen)) for o in table.run_overrides()]
    if not cells:
        return f"{table.name} trains no runs (its numbers come from elsewhere)."
    keys = columns([settings for _, settings in cells])
    names = column_names(keys)
    label = "" if variant == "paper" else f" (recipe_variant={variant})"
    lines = [f"# What each cell of {table.name} trains with{label}", ""]
    lines += ["| dataset | model | method | " + " | ".join(names[k] for k in keys) + " |"]
    lines += ["|" + "---|" * (3 + len(keys))]
    for overrides, settings in cells:
        cfg = composer.compose(overrides)
        method = cfg.optimizer.name if cfg.method.name == "erm" else f"{cfg.method.name} + {cfg.optimizer.name}"
        values = [show(settings[k].value) if k in settings else "—" for k in keys]
        lines.append(f"| {cfg.dataset.name} | {cfg.model.name} | {method} | " + " | ".join(values) + " |")
    if sources:
        lines += ["", "## Sources", ""] + source_lines(keys, names, [s for _, s in cells])
    if sources and chosen:
        paper = [cell_settings(composer, o) for o in table.run_overrides()]
        lines += ["", f"## What recipe_variant={variant} changes", ""]
        lines += change_lines(paper, [s for _, s in cells], variant)
    return "\n".join(lines)


def origin(s: Setting) -> str:
    """Where a value comes from: its source, or why there is none."""
    return s.source or ("no source stated" if s.file else "the code's default (no config file sets it)")


def source_lines(keys: list[str], names: dict[str, str], cells: list[dict[str, Setting]]) -> list[str]:
    """Per column, each value with its source and the files that set it, and how many cells use it."""
    lines = []
    for key in keys:
        used: dict[tuple[str, str], list[str]] = {}
        for settings in cells:
            if key in settings:
                s = settings[key]
                used.setdefault((show(s.value), origin(s)), []).append(s.file or "-")
        lines.append(f"- **{names[key]}** (`{key}`)")
        for (value, where), files in used.items():
            lines.append(f"  - {value}: {where} [{', '.join(dict.fromkeys(files))}; {len(files)} of {len(cells)}]")
    return lines


def change_lines(paper: list[dict[str, Setting]], variant: list[dict[str, Setting]], name: str) -> list[str]:
    """Each value the variant gives a cell other than the paper's recipe, with both sources and the files that
    set them, and how many cells it changes."""
    absent = Setting(None, None, "not a key of the paper's recipe")
    changed: dict[str, dict[tuple[str, str, str, str], list[tuple[str, str]]]] = {}
    for before, after in zip(paper, variant, strict=True):
        for key, new in after.items():
            old = before.get(key, absent)
            if repr(old.value) != repr(new.value):
                change = (show(old.value), origin(old), show(new.value), origin(new))
                changed.setdefault(key, {}).setdefault(change, []).append((old.file or "-", new.file or "-"))
    lines = []
    for key, changes in changed.items():
        lines.append(f"- `{key}`")
        for (old, old_origin, new, new_origin), files in changes.items():
            old_files, new_files = (", ".join(dict.fromkeys(f)) for f in zip(*files, strict=True))
            lines.append(f"  - {old} -> {new} in {len(files)} of {len(paper)} cells")
            lines.append(f"    - paper: {old_origin} [{old_files}]")
            lines.append(f"    - {name}: {new_origin} [{new_files}]")
    return lines
