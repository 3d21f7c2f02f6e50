"""After an upgrade the planner finds the runs an earlier release finished, under their old names, and adopts
them (one line naming both folders) instead of training them again."""

import itertools
import json

from omegaconf import OmegaConf

from lesam.report.make_table import Options, dry_run, launch_runs
from lesam.report.plan import FINISHED, NOT_STARTED, Run, composer, locate, multiruns, runs
from lesam.report.spec import Table
from lesam.report.tables import grid


class Recorder:
    """A runner that records each command and trains nothing."""

    def __init__(self):
        self.calls = []

    def __call__(self, argv, env):
        self.calls.append(argv)
        return 0


def cifar100_resnet18(root) -> tuple[Table, list[Run]]:
    """Table 4's ResNet-18 row (SAM, LE-SAM, LE-SAM+), seed 0, its runs written below `root`."""
    row = {"ResNet-18": ("experiment=cifar100_resnet18",)}
    block = grid("CIFAR-100", row, {m: (f"optimizer={m}",) for m in ("sam", "lesam", "lesam_plus")})
    t = Table("row", "Table 4's first row", (block,), seeds=(0,))
    return t, runs(t, extra=lambda _: (f"output_root={root}",))


def finished_by_an_earlier_release(folder, cfg) -> None:
    """A finished run folder as the release of 2026-11-28 wrote it: its config lacks the keys added since."""
    config = OmegaConf.to_container(cfg, resolve=True)
    del config["trainer"]["accumulation_steps"], config["dataset"]["mean"], config["dataset"]["std"]
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    (folder / "final.json").write_text(json.dumps({"test_acc": 81.5}))


def test_a_run_an_earlier_release_finished_is_adopted_not_trained_again(tmp_path, capsys):
    t, planned = cifar100_resnet18(tmp_path)
    lesam = planned[1]
    old = tmp_path / "cifar100-resnet18-lesam-s0-0a1d0000"  # the name the earlier release gave it
    with composer() as c:
        finished_by_an_earlier_release(old, c.compose(lesam.args))
        own = c.folder(lesam.args)
        assert [(s.status, s.folder) for s in locate(planned, c)] == [
            (NOT_STARTED, None),
            (FINISHED, old),
            (NOT_STARTED, None),
        ]
        assert c.home(lesam.args) == old and c.home(planned[0].args) == c.folder(planned[0].args)
        runner = Recorder()
        assert launch_runs(t, planned, c, Options(runner=runner)) == []
    err = capsys.readouterr().err
    assert f"adopted {old} for {own}: the same run, finished; not trained again" in err.splitlines()
    (argv,) = runner.calls  # one multirun, without LE-SAM
    assert "optimizer=sam,lesam_plus" in argv and not any("lesam," in a or a.endswith("=lesam") for a in argv)

    dry_run(t, Options(extra=(f"output_root={tmp_path}",)))
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == f"# adopted {old} for {own}: the same run, finished; not trained again"
    assert "optimizer=sam" in printed[0] and "optimizer=lesam_plus" in printed[2]


def test_an_unfinished_folder_is_not_adopted(tmp_path):
    t, planned = cifar100_resnet18(tmp_path)
    with composer() as c:
        old = tmp_path / "cifar100-resnet18-lesam-s0-0a1d0000"
        finished_by_an_earlier_release(old, c.compose(planned[1].args))
        (old / "final.json").unlink()
        assert c.home(planned[1].args) == c.folder(planned[1].args)


def test_multiruns_launch_exactly_the_runs_given():
    every = [Run(("experiment=x", f"optimizer={o}"), s) for o, s in itertools.product(("sam", "lesam", "sgd"), (0, 1))]
    left = [r for r in every if (r.overrides[1], r.seed) != ("optimizer=lesam", 1)]  # one adopted
    launched = {
        (("experiment=x", f"{m.key}={value}"), seed) for m in multiruns(left) for value in m.values for seed in m.seeds
    }
    assert launched == {(r.overrides, r.seed) for r in left}
