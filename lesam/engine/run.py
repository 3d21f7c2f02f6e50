"""One run from its config: train or resume, write metrics and the result, or skip if finished."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lesam.engine.logger import make_logger
from lesam.engine.run_folder import RunFolder
from lesam.engine.trainer import Trainer
from lesam.engine.validate import validate

log = logging.getLogger("lesam")


def run_folder() -> Path:
    """The folder Hydra chose for this run (deterministic from the config)."""
    return Path(HydraConfig.get().runtime.output_dir)


def result(cfg: DictConfig, history: list[dict], seconds: float, trainer: Trainer) -> dict:
    """final.json: the last test accuracy, the best one, and the run's key choices."""
    tested = [r for r in history if r.get("test_acc") is not None]
    last = history[-1]
    return {
        "test_acc": tested[-1]["test_acc"] if tested else None,
        "best_test_acc": max(r["test_acc"] for r in tested) if tested else None,
        "test_loss": tested[-1]["test_loss"] if tested else None,
        "train_acc": last["train_acc"],
        "train_loss": last["train_loss"],
        "epochs": trainer.epoch,
        "steps": trainer.step,
        "seconds": seconds,
        "skipped_steps": last["skipped_steps"],
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "optimizer": cfg.optimizer.name,
        "seed": cfg.seed,
        "hyperparameters": {k: cfg.optimizer.get(k) for k in ("lr", "rho", "delta", "rho_max", "alpha")},
    }


def run(cfg: DictConfig, folder: Path | None = None) -> dict:
    """Train the run that `cfg` describes into `folder` (Hydra's run folder by default)."""
    folder = RunFolder(folder or run_folder())
    if folder.is_finished():
        log.info("finished already: %s (delete final.json to run it again)", folder.path)
        return folder.read_final()
    with folder.removed_on_failure():
        validate(cfg)
        folder.check_writable()
        trainer = Trainer(cfg)
        checkpoint = folder.load_checkpoint()
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
        folder.write_config(cfg, overrides)
    logging.getLogger().addHandler(_file_handler(folder.log))
    seconds = 0.0
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint["trainer"])
        seconds = checkpoint["seconds"]
        folder.keep_metrics_through(trainer.epoch)
        log.info("resuming %s after epoch %d", folder.path, trainer.epoch)
    logger = make_logger(cfg, folder.path)
    while not trainer.done:
        record = _epoch(cfg, trainer)
        seconds += record["seconds"]
        trace = record.pop("rho_trace", None)
        if trace is not None:
            folder.append_rho({"epoch": record["epoch"]} | trace)
        folder.append_metrics(record)
        folder.save_checkpoint({"trainer": trainer.state_dict(), "seconds": seconds})
        logger.log(record, step=trainer.epoch)
        log.info(_summary(record))
    final = result(cfg, folder.read_metrics(), seconds, trainer)
    folder.write_final(final)
    logger.finish()
    log.info("done: test accuracy %s%% -> %s", _fmt(final["test_acc"]), folder.final)
    return final


def _epoch(cfg: DictConfig, trainer: Trainer) -> dict:
    """Train one epoch, test if due (and always at the end), and return the epoch's record."""
    start = time.perf_counter()
    record = {"epoch": trainer.epoch + 1} | trainer.train_epoch()
    if trainer.epoch % cfg.trainer.eval_every == 0 or trainer.done:
        record |= trainer.evaluate()
    else:
        record |= {"test_loss": None, "test_acc": None}
    lpf_every = cfg.trainer.lpf.every
    if lpf_every and (trainer.epoch % lpf_every == 0 or trainer.done):
        record |= trainer.lpf()
    factor = record.pop("budget_factor")
    record["delta"] = cfg.optimizer.delta * factor if "delta" in cfg.optimizer else None
    record["seconds"] = time.perf_counter() - start
    return record


def _summary(record: dict) -> str:
    rho = f" rho {record['rho_mean']:.3g}" if "rho_mean" in record else ""
    return (
        f"epoch {record['epoch']}: train loss {record['train_loss']:.4f} acc {record['train_acc']:.2f}% | "
        f"test loss {_fmt(record['test_loss'], '.4f')} acc {_fmt(record['test_acc'])}%{rho} | "
        f"{record['images_per_s']:.0f} img/s, {record['seconds']:.1f} s"
    )


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _file_handler(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    return handler
