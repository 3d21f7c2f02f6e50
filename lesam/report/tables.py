"""The paper's tables: for each cell, the train.py overrides of its runs and the number it reports."""

from __future__ import annotations

from dataclasses import replace

from lesam.report.spec import TEST_ACC, Analysis, AttackAccuracy, Block, Cell, Metric, Table, TargetDomainMean

METHODS = {
    "sgd": "SGD",
    "eigensam": "Eigen-SAM",
    "asam": "ASAM",
    "esam": "ESAM",
    "fsam": "F-SAM",
    "sam": "SAM",
    "lesam": "LE-SAM",
    "lesam_plus": "LE-SAM+",
}
CIFAR_BACKBONES = {"resnet18": "ResNet-18", "wrn28_10": "WRN-28-10", "pyramidnet110": "PyramidNet-110"}
CIFAR = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
# single-source domain generalisation: the paper's column letter -> dataset.source_domain (DomainBed folder names)
DOMAINS = {
    "pacs": {"P": "photo", "A": "art_painting", "C": "cartoon", "S": "sketch"},
    "vlcs": {"V": "VOC2007", "L": "LabelMe", "C": "Caltech101", "S": "SUN09"},
}
LT_LITERATURE = (
    "CE",
    "BBN (CVPR20)",
    "KCL (ICLR21)",
    "TSC (CVPR22)",
    "HCL (CVPR21)",
    "ETF-DR (NeurIPS22)",
    "SEL (ICCV25)",
    "Focal-SAM (ICML25)",
    "RBL (ICML23)",
)


def optimizers(*names: str) -> dict[str, tuple[str, ...]]:
    """Method labels -> their optimizer override."""
    return {METHODS[n]: (f"optimizer={n}",) for n in names}


def grid(
    title: str,
    rows: dict[str, tuple[str, ...]],
    columns: dict[str, tuple[str, ...]],
    fixed: tuple[str, ...] = (),
    swept: str = "columns",
    metric: Metric = TEST_ACC,
    average: str | None = None,
    comparisons: tuple[tuple[str, str], ...] = (),
) -> Block:
    """A block whose cell (row, column) runs `fixed + row + column` overrides.

    The overrides of the `swept` axis come last, so that a row (or column) is one Hydra multirun.
    `comparisons`: (method, baseline) labels whose difference the table shows.
    """
    cells = tuple(
        Cell(r, c, fixed + (rows[r] + columns[c] if swept == "columns" else columns[c] + rows[r]), metric)
        for r in rows
        for c in columns
    )
    return Block(title, tuple(rows), tuple(columns) + ((average,) if average else ()), cells, average, comparisons)


def quoted(block: Block, rows: tuple[str, ...]) -> Block:
    """`block` with rows above it that the paper quotes from other work (not run here)."""
    cells = tuple(Cell(r, c) for r in rows for c in block.columns)
    return replace(block, rows=rows + block.rows, cells=cells + block.cells)


TABLE1_METHODS = ("sgd", "eigensam", "asam", "esam", "fsam", "sam", "lesam")
VARIANTS = (
    "paper",
    "authors",
)  # the recipes of the paper's appendix F, or of its authors' code (configs/recipe_variant)
VS_SAM_AND_SGD = (("LE-SAM", "SAM"), ("LE-SAM", "SGD"))  # the paper's claims: LE-SAM above SAM and above SGD

TABLE1 = Table(
    "table1",
    "Table 1: CIFAR-10/100 trained from scratch, test accuracy (%)",
    tuple(
        grid(
            label,
            {b: (f"experiment={dataset}_{model}",) for model, b in CIFAR_BACKBONES.items()},
            optimizers(*TABLE1_METHODS),
            comparisons=VS_SAM_AND_SGD,
        )
        for dataset, label in CIFAR.items()
    ),
    notes=(
        "Baselines' radii: configs/recipe/model_optimizer (SAM, ESAM per backbone) and "
        "configs/recipe/dataset_optimizer (ASAM, F-SAM per data set); "
        "`python train.py -m experiment=<cell family> sweep=rho_<method>` tunes them.",
    ),
    variants=VARIANTS,
)

TABLE2 = Table(
    "table2",
    "Table 2: ImageNet trained from scratch, top-1 accuracy (%)",
    (
        grid(
            "ImageNet",
            {"ResNet-50": ("experiment=imagenet_r50",), "ResNet-101": ("experiment=imagenet_r101",)},
            optimizers(*TABLE1_METHODS),
            comparisons=VS_SAM_AND_SGD,
        ),
    ),
)

TABLE3 = Table(
    "table3",
    "Table 3: ViT-B/16 fine-tuned from ImageNet weights, test accuracy (%)",
    (
        grid(
            "ViT-B/16",
            {"SGD*": ("optimizer=sgd",), "SAM": ("optimizer=sam",), "LE-SAM": ("optimizer=lesam",)},
            {"CIFAR-10": ("experiment=vit_b16_cifar10",), "CIFAR-100": ("experiment=vit_b16_cifar100",)},
            swept="rows",
            comparisons=(("LE-SAM", "SAM"), ("LE-SAM", "SGD*")),
        ),
    ),
)

TABLE4 = Table(
    "table4",
    "Table 4: LE-SAM+ on CIFAR-100, test accuracy (%)",
    (
        grid(
            "CIFAR-100",
            {b: (f"experiment=cifar100_{model}",) for model, b in CIFAR_BACKBONES.items()},
            optimizers("sam", "lesam", "lesam_plus"),
            comparisons=(("LE-SAM", "SAM"), ("LE-SAM+", "LE-SAM")),
        ),
    ),
    notes=("SAM and LE-SAM are the runs of Table 1's CIFAR-100 cells (the same run folders).",),
    variants=VARIANTS,
)

PGD = Analysis("pgd", ("analysis=pgd",))

TABLE5 = Table(
    "table5",
    "Table 5: robustness to PGD attacks, accuracy (%) under attack",
    (
        grid(
            "PGD",
            optimizers("sam", "lesam"),
            {"CIFAR-10": ("experiment=robust_cifar10",), "CIFAR-100": ("experiment=robust_cifar100",)},
            swept="rows",
            metric=AttackAccuracy(PGD.result_file),
            comparisons=(("LE-SAM", "SAM"),),
        ),
    ),
    analyses=(PGD,),
    notes=(
        "Each run's last.pt is attacked by `analyze.py analysis=pgd` (the attacks of configs/analysis/pgd.yaml); "
        "one column per attack in the run's pgd.json (`attacks.<name>.adv_acc`).",
    ),
)

TABLE6 = Table(
    "table6",
    "Table 6: training time per epoch (s), SAM and LE-SAM",
    (
        Block(
            "Time per epoch",
            tuple(f"{b} {METHODS[o]}" for b in CIFAR_BACKBONES.values() for o in ("sam", "lesam")),
            ("s/epoch",),
            tuple(
                Cell(f"{b} {METHODS[o]}", "s/epoch", bench=(model, o))
                for model, b in CIFAR_BACKBONES.items()
                for o in ("sam", "lesam")
            ),
        ),
    ),
    seeds=(),
    notes=(
        "Ours: the benchmark of the speed work, scripts/bench.py (`make bench`), read from its JSON (BENCH=path); "
        "one column per benchmarked setting. The paper's numbers are from one RTX 5090.",
        "No reproduction verdict: a cell is one timing, on other hardware than the paper's.",
    ),
)

LT_ROWS = {label: ("method=glmc", f"optimizer={o}") for label, o in (("GLMC", "sgd"), ("GLMC + SAM", "sam"))}
LT_ROWS["GLMC + LE-SAM"] = ("method=glmc", "optimizer=lesam")
LT_FACTORS = {f: (f"dataset.imbalance_factor={f}",) for f in ("100", "50")}


def long_tail(title: str, metric: Metric = TEST_ACC) -> Block:
    """GLMC alone, with SAM and with LE-SAM, by imbalance factor: one multirun per factor."""
    comparisons = (("GLMC + LE-SAM", "GLMC + SAM"), ("GLMC + LE-SAM", "GLMC"))
    return grid(title, LT_ROWS, LT_FACTORS, ("experiment=cifar100_lt",), "rows", metric, comparisons=comparisons)


TABLE7 = Table(
    "table7",
    "Table 7: CIFAR-100-LT, test accuracy (%) by imbalance factor",
    (
        quoted(long_tail("CIFAR-100-LT"), LT_LITERATURE),
        long_tail("Shot groups (ours only)", Metric(key="shot_acc")),
    ),
    notes=("Shot groups: many/medium/few-shot accuracy from each run's final.json (`shot_acc`).",),
)

TABLE_DG = Table(
    "table_dg",
    "Single-source domain generalisation (Section 6.2): accuracy (%) on the unseen domains",
    tuple(
        grid(
            name.upper(),
            {"ERM++": ("optimizer=sgd",), "SAM": ("optimizer=sam",), "LE-SAM": ("optimizer=lesam",)},
            {letter: (f"dataset.source_domain={domain}",) for letter, domain in DOMAINS[name].items()},
            fixed=(f"experiment={name}", "method=ermpp"),
            swept="rows",
            metric=TargetDomainMean(),
            average="Avg",
            comparisons=(("LE-SAM", "SAM"), ("LE-SAM", "ERM++")),
        )
        for name in DOMAINS
    ),
    notes=(
        "Each column is trained on that source domain; its number is the mean accuracy over the other domains "
        "(final.json `domain_acc`). Avg: the mean over the four source domains, per seed.",
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (TABLE1, TABLE2, TABLE3, TABLE4, TABLE5, TABLE6, TABLE7, TABLE_DG)}
ALIASES = {"table_lesam_plus": "table4"}  # the LE-SAM+ table of Section 6.1 is Table 4


def table(name: str) -> Table:
    """The table called `name` (or one of its aliases); KeyError if there is none."""
    return TABLES[ALIASES.get(name, name)]
