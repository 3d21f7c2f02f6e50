"""One run from its config: train or resume, write metrics and the result, or skip if finished."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lesam.core.errors import UserError
from lesam.core.files import WriteFailed
from lesam.core.run_folder import DIVERGED, ReplicaFolder, RunFolder
from lesam.core.run_id import run_id
from lesam.engine import distributed
from lesam.engine.clip_report import clip_warning, run_clipped_fraction
from lesam.engine.guards import Diverged, divergence
from lesam.engine.logger import make_logger
from lesam.engine.preemption import STOP, Interrupted, stop_on_signals
from lesam.engine.trainer import Trainer
from lesam.engine.validate import validate

log = logging.getLogger("lesam")
BREAKDOWNS = ("domain_acc", "shot_acc")  # per-domain and many/medium/few-shot accuracy, where the data set has them


def run_folder() -> Path:
    """The folder Hydra chose for this run (deterministic from the config)."""
    return Path(HydraConfig.get().runtime.output_dir)


def result(cfg: DictConfig, history: list[dict], seconds: float, trainer: Trainer) -> dict:
    """final.json: the last test accuracy, the best epoch's (GLMC, say, reports its best), and the run's key choices."""
    tested = [r for r in history if r.get("test_acc") is not None]
    last = history[-1]
    best = max(tested, key=lambda r: r["test_acc"]) if tested else {}  # the first of equals
    record = {
        "test_acc": tested[-1]["test_acc"] if tested else None,
        "best_test_acc": best.get("test_acc"),
        "best_epoch": best.get("epoch"),
        "test_loss": tested[-1]["test_loss"] if tested else None,
        "train_acc": last["train_acc"],
        "train_loss": last["train_loss"],
        "epochs": trainer.epoch,
        "steps": trainer.step,
        "seconds": seconds,
        "skipped_steps": last["skipped_steps"],
        "clipped_fraction": run_clipped_fraction(history),
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "optimizer": cfg.optimizer.name,
        "seed": cfg.seed,
        "processes": distributed.world_size(),
        "hyperparameters": {k: cfg.optimizer.get(k) for k in ("lr", "rho", "delta", "rho_max", "alpha")},
        "method": cfg.method.name if "method" in cfg else "erm",
    }
    for key in BREAKDOWNS:
        if key in best:
            record |= {key: tested[-1][key], f"best_{key}": best[key]}
    return record


@stop_on_signals  # SIGTERM/SIGUSR1/SIGINT: a checkpoint at the next step boundary, then Interrupted
def run(cfg: DictConfig, folder: Path | None = None) -> dict:
    """Train the run that `cfg` describes into `folder` (Hydra's run folder by default)."""
    folder = (RunFolder if distributed.is_main() else ReplicaFolder)(folder or run_folder())
    if folder.is_finished():
        return _finished(folder)
    try:
        with folder.removed_on_failure():
            return _train(cfg, folder)
    except WriteFailed as error:
        kept = "the previous checkpoint is kept" if folder.checkpoint.exists() else "no checkpoint was written yet"
        raise UserError(f"{error}; {kept}") from error
    finally:
        folder.unlock()


def _finished(folder: RunFolder) -> dict:
    log.info("finished already: %s (delete the folder to train it again)", folder.path)
    final = folder.read_final()
    if final.get("status") == DIVERGED:
        raise _diverged(folder, final["reason"])
    return final


def _diverged(folder: RunFolder, reason: str) -> Diverged:
    return Diverged(
        f"the run diverged ({reason}); {folder.final} says so, and tables leave the run out; "
        "lower optimizer.lr, or check the data"
    )


def _train(cfg: DictConfig, folder: RunFolder) -> dict:
    """Take the folder, start from its checkpoint if it has one, and train to the end."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    validate(cfg, overrides)
    folder.check_writable()
    folder.lock()
    if folder.is_finished():  # by the process that held the folder until a moment ago
        return _finished(folder)
    folder.remove_temporaries()
    trainer = Trainer(cfg)
    checkpoint = folder.load_checkpoint()
    seconds = _resume(cfg, trainer, checkpoint, folder) if checkpoint is not None else 0.0
    # the lines of the epochs the checkpoint holds, none without one
    mended = folder.keep_lines_through(trainer.epoch, checkpoint.get("lines") if checkpoint else None)
    folder.write_config(cfg, overrides)
    with _logging_to(folder.log):
        log.info(
            "step: %s",
            "captured as a CUDA graph" if trainer.eager_reason is None else f"eager ({trainer.eager_reason})",
        )
        if checkpoint is not None:
            log.info("resuming %s %s", folder.path, _position(trainer))
        for note in mended:
            log.warning("%s", note)
        logger = make_logger(cfg, folder.path)
        while not trainer.done:
            record = _epoch_or_stop(cfg, trainer, folder, seconds)
            seconds += record["seconds"]
            trace = record.pop("rho_trace", None)
            if trace is not None:
                folder.append_rho({"epoch": record["epoch"]} | trace)
            folder.append_metrics(record)
            folder.save_checkpoint(_checkpoint(cfg, trainer, folder, seconds))
            logger.log(record, step=trainer.epoch)
            log.info(_summary(record))
            if (warning := clip_warning(cfg.optimizer, record)) is not None:
                log.warning(warning)
        distributed.barrier()  # rank 0 has written every record
        final = result(cfg, folder.read_metrics(), seconds, trainer)
        reason = divergence(trainer.model, final["test_loss"])
        final = ({"status": DIVERGED, "reason": reason} if reason else {"status": "done"}) | final
        folder.write_final(final)
        logger.finish()
        if reason:
            raise _diverged(folder, reason)
        log.info("done: test accuracy %s%% -> %s", _fmt(final["test_acc"]), folder.final)
        return final


def _checkpoint(cfg: DictConfig, trainer: Trainer, folder: RunFolder, seconds: float) -> dict:
    """last.pt: the trainer's state, the seconds trained so far, the run it belongs to, and the lines of
    metrics.jsonl and rho.jsonl it vouches for."""
    return {"trainer": trainer.state_dict(), "seconds": seconds, "run_id": run_id(cfg), "lines": folder.lines}


def _resume(cfg: DictConfig, trainer: Trainer, checkpoint: dict, folder: RunFolder) -> float:
    """Load last.pt into the trainer; returns the seconds trained so far.

    A checkpoint of another config, or one this code cannot load, stops the run before anything
    is written, and the file is left as it is.
    """
    advice = "move it away to start the run over, or resume it with the config and code that wrote it"
    written_by = checkpoint.get("run_id")
    if written_by is not None and written_by != run_id(cfg):
        raise UserError(f"the checkpoint '{folder.checkpoint}' was written by run {written_by}; {advice}")
    try:
        trainer.load_state_dict(checkpoint["trainer"])
        return checkpoint["seconds"]
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
        reason = f"it has no {error.args[0]!r}" if isinstance(error, KeyError) else " ".join(str(error).split())[:300]
        raise UserError(f"the checkpoint '{folder.checkpoint}' does not fit this run ({reason}); {advice}") from error


def _epoch_or_stop(cfg: DictConfig, trainer: Trainer, folder: RunFolder, seconds: float) -> dict:
    """`_epoch`; on a stop signal, write a mid-epoch checkpoint, then end the run with Interrupted."""
    try:
        return _epoch(cfg, trainer)
    except Interrupted as stop:
        folder.save_checkpoint(_checkpoint(cfg, trainer, folder, seconds))
        distributed.barrier()  # no process leaves before rank 0 has written last.pt
        stop.checkpoint = folder.checkpoint
        if distributed.is_main():  # the one line the run ends with, before a requeueing handler may end the process
            log.warning("%s", stop)
        STOP.hand_on(stop.signum)  # under submitit: requeue the job
        raise


def _epoch(cfg: DictConfig, trainer: Trainer) -> dict:
    """Train one epoch, test if due (and always at the end), and return the epoch's record."""
    start = time.perf_counter() - (trainer.partial["seconds"] if trainer.partial else 0.0)  # before an interruption
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


def _position(trainer: Trainer) -> str:
    """Where a resumed run goes on: after a whole epoch, or partway through one."""
    into = trainer.step - trainer.epoch * trainer.steps_per_epoch
    if into:
        return f"at step {trainer.step}, {into} of {trainer.steps_per_epoch} steps into epoch {trainer.epoch + 1}"
    return f"after epoch {trainer.epoch} (step {trainer.step})"


def _summary(record: dict) -> str:
    rho = f" rho {record['rho_mean']:.3g}" if "rho_mean" in record else ""
    rho += f" (clipped {record['clipped_fraction']:.0%})" if "clipped_fraction" in record else ""
    return (
        f"epoch {record['epoch']}: train loss {record['train_loss']:.4f} acc {record['train_acc']:.2f}% | "
        f"test loss {_fmt(record['test_loss'], '.4f')} acc {_fmt(record['test_acc'])}%{rho} | "
        f"{record['images_per_s']:.0f} img/s, {record['seconds']:.1f} s"
    )


def _ending(error: Exception) -> str:
    """How an error ended the run, in one line: as the CLI prints a user mistake, else its type and message."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, UserError):
        return f"error: {text}"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


@contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """Copy the log into the run's train.log while the run trains (and only then), and the error that ends it."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        yield
    except Exception as error:
        if not isinstance(error, Interrupted):  # a stop has its own line; an error is printed once, by the CLI
            ending = {"levelno": logging.ERROR, "levelname": "ERROR", "msg": _ending(error)}
            handler.handle(logging.makeLogRecord(ending))
        raise
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
