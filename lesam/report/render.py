"""A collected table as Markdown and as LaTeX: ours (mean +- std, n) beside the paper's number, then per block
the reproduction verdict of each cell and the differences of each method from its baseline."""

from __future__ import annotations

from lesam.report.aggregate import BlockResult, Difference, Stat, TableResult
from lesam.report.confidence import Interval, verdict
from lesam.report.paper import PaperValue
from lesam.report.plan import DIVERGED, FINISHED, NOT_STARTED, UNFINISHED

LEGEND = (
    "Ours: mean ± std over seeds (sample std), then (runs with a result / runs of the cell); "
    "missing: no run of the cell has finished; not run here: a result the paper quotes from other work. "
    "Paper: the number printed in the paper; not stated: the cell was lost in extraction of the paper's text; "
    "—: the paper has no such cell."
)
STATISTICS = (
    "Reproduction: n, the runs with a result; 95% CI, Student's t interval of the mean over the seeds, "
    "mean ± t · s / sqrt(n), t the 0.975 quantile of Student's t with n − 1 degrees of freedom, s the sample std. "
    "Verdict: reproduced, the paper's number lies in the interval (ends included); above / below, the interval lies "
    "above / below the paper's number; one seed, n = 1 (no interval); —, no verdict (no published number, "
    "or no finished run). Two or more runs of one value give an interval of that value alone: reproduced only if "
    "the paper's number equals it. Numbers are compared unrounded.",
    "Differences, method − baseline: Welch's t interval (95%, Welch-Satterthwaite degrees of freedom) on the two "
    "cells' seeds, unpaired: a seed gives both methods the same start and data order, but nothing shows their final "
    "accuracies stay correlated, and Welch keeps every run when a cell lacks a seed. Paper: the difference of its two "
    "numbers, or as its text states it. Ordering: held / reversed, the interval lies on the same / the other side "
    "of 0 as the paper's difference; unresolved, the interval holds 0; one seed, a cell has one run; —, no verdict "
    "(no paper difference, or a cell without runs).",
)
REPRODUCTION_HEADER = ["row", "column", "n", "ours: mean [95% CI]", "paper", "verdict"]
DIFFERENCE_HEADER = ["difference", "at", "n", "ours: mean [95% CI]", "paper", "ordering"]


def ours(stat: Stat | None) -> str:
    """Our cell: '80.12 ± 0.20 (3/3)', '80.12 (1/3)', 'missing (0/3)' or 'not run here'."""
    if stat is None:
        return "not run here"
    count = f"({stat.n}/{stat.expected})"
    if stat.n == 0:
        return f"missing {count}"
    spread = f" ± {stat.std:.2f}" if stat.std is not None else ""
    return f"{stat.mean:.2f}{spread} {count}"


def paper(value: PaperValue | None) -> str:
    """The paper's cell: '80.17', '98.08 ± 0.11', 'not stated' or '—'."""
    if value is None:
        return "—"
    if value.mean is None:
        return "not stated"
    return f"{value.mean:.2f}" + (f" ± {value.std:.2f}" if value.std is not None else "")


def estimate(mean: float | None, interval: Interval | None, signed: bool = False) -> str:
    """'80.12 [79.51, 80.73]', '+1.20 [-0.31, +2.71]' (signed), '80.12' without an interval, or 'missing'."""
    if mean is None:
        return "missing"
    number = "{:+.2f}" if signed else "{:.2f}"
    if interval is None:
        return number.format(mean)
    return f"{number.format(mean)} [{number.format(interval.low)}, {number.format(interval.high)}]"


def reproduction(block: BlockResult) -> list[list[str]]:
    """One line per cell of ours: row, column, n, mean [95% CI], the paper's number, the verdict."""
    lines = []
    for (row, column), stat in block.stats.items():
        if stat is None:
            continue
        value = block.paper[row, column]
        published = value.mean if value is not None else None
        decided = verdict(stat.n, stat.interval, published)
        lines.append([row, column, str(stat.n), estimate(stat.mean, stat.interval), paper(value), decided])
    return lines


def difference(d: Difference) -> list[str]:
    """One line of the differences: method − baseline, where, n of each, mean [95% CI], the paper's, ordering."""
    printed = f"{d.paper:+.2f}" if d.paper is not None else "—"
    n = ", ".join(str(stat.n) for stat in d.ours)
    return [f"{d.method} − {d.baseline}", d.label, n, estimate(d.mean, d.interval, signed=True), printed, d.ordering]


def sections(block: BlockResult) -> list[tuple[str, list[str], list[list[str]]]]:
    """The block's reproduction and differences tables (title, header, lines); none for a block without seeds."""
    if block.paper_only or not block.seeded:
        return []
    found = [(f"{block.title}: reproduction", REPRODUCTION_HEADER, reproduction(block))]
    if block.differences:
        found.append((f"{block.title}: differences", DIFFERENCE_HEADER, [difference(d) for d in block.differences]))
    return found


def status(result: TableResult) -> str:
    """How many of the table's runs have finished."""
    if not result.states:
        return "Runs: none (this table is not computed from training runs)."
    parts = [f"{result.count(FINISHED)} of {len(result.states)} finished"]
    parts += [f"{result.count(s)} {s}" for s in (DIVERGED, UNFINISHED, NOT_STARTED) if result.count(s)]
    return "Runs: " + ", ".join(parts) + "."


def _header(block: BlockResult) -> list[str]:
    if block.paper_only:
        return [block.title, *block.columns]
    return [block.title, *(f"{c} ({side})" for c in block.columns for side in ("ours", "paper"))]


def _row(block: BlockResult, row: str) -> list[str]:
    if block.paper_only:
        return [row, *(paper(block.paper[row, c]) for c in block.columns)]
    return [row, *(text for c in block.columns for text in (ours(block.stats[row, c]), paper(block.paper[row, c])))]


def _pipe_table(header: list[str], lines: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(x) + " |" for x in lines)]


def markdown(result: TableResult) -> str:
    """The table as Markdown: a title, the legend, per block a pipe table and its reproduction and differences,
    then how they are computed, then the notes."""
    lines = [f"# {result.table.title}", "", f"Paper: {result.source}.", "", LEGEND, "", status(result), ""]
    for block in result.blocks:
        lines += [f"## {block.title}", "", *_pipe_table(_header(block), [_row(block, r) for r in block.rows]), ""]
        for title, header, rows in sections(block):
            lines += [f"### {title}", "", *_pipe_table(header, rows), ""]
    if any(sections(block) for block in result.blocks):
        lines += [line for text in STATISTICS for line in (text, "")]
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines).rstrip() + "\n"


LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}"}
LATEX_SPECIAL |= {"~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text: str) -> str:
    """`text` with LaTeX's special characters escaped, ±, · and − as math, — as an em dash."""
    escaped = "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)
    return escaped.replace("±", r"$\pm$").replace("·", r"$\cdot$").replace("—", "---").replace("−", "$-$")


def _latex_block(block: BlockResult) -> list[str]:
    width = 1 if block.paper_only else 2
    lines = [r"\begin{tabular}{l" + " c" * (width * len(block.columns)) + "}", r"\toprule"]
    if block.paper_only:
        lines.append(" & ".join(latex_escape(c) for c in [block.title, *block.columns]) + r" \\")
    else:
        spans = [rf"\multicolumn{{2}}{{c}}{{{latex_escape(c)}}}" for c in block.columns]
        rules = " ".join(rf"\cmidrule(lr){{{2 + 2 * i}-{3 + 2 * i}}}" for i in range(len(block.columns)))
        lines += [" & ".join(["", *spans]) + r" \\", rules]
        lines.append(" & ".join([latex_escape(block.title), *["ours", "paper"] * len(block.columns)]) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(latex_escape(t) for t in _row(block, row)) + r" \\" for row in block.rows]
    return [*lines, r"\bottomrule", r"\end{tabular}"]


def _latex_tabular(header: list[str], lines: list[list[str]]) -> list[str]:
    rows = [" & ".join(latex_escape(t) for t in line) + r" \\" for line in [header, *lines]]
    return [
        r"\begin{tabular}{ll" + " c" * (len(header) - 2) + "}",
        r"\toprule",
        rows[0],
        r"\midrule",
        *rows[1:],
        r"\bottomrule",
        r"\end{tabular}",
    ]


def _float(caption: str, tabulars: list[list[str]]) -> list[str]:
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(caption)}}}", r"\small"]
    for i, tabular in enumerate(tabulars):
        lines += ([r"\par\medskip"] if i else []) + tabular
    return [*lines, r"\end{table}"]


def latex(result: TableResult) -> str:
    """The table as LaTeX (booktabs): one tabular per block inside a table float, the legend as caption;
    then a float per block with its reproduction and differences, how they are computed as caption."""
    caption = f"{result.table.title}. Paper: {result.source}. {LEGEND} {status(result)}"
    lines = [r"% generated by scripts/table.py from run folders; needs \usepackage{booktabs}"]
    lines += _float(caption, [_latex_block(block) for block in result.blocks])
    for block in result.blocks:
        if found := sections(block):
            title = f"{result.table.title}, {block.title}: reproduction. {' '.join(STATISTICS)}"
            lines += _float(title, [_latex_tabular(header, rows) for _, header, rows in found])
    return "\n".join(lines) + "\n"
