"""The training loop every network of the registry trains with (`fit`), and window-level prediction with torch.

One loop for every architecture: the network comes from `training.models.registry` (a CNN from
scratch, or a head on cached musicnn features), its parameter groups (which layers learn at
which rate) from the network itself; the schedule (linear warm-up, cosine decay), AdamW, class-
and source-balanced sampling, augmentation of log-mel inputs, checkpoints with an exact resume,
and torchrun's processes are the same for all.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genre_model import vote
from training.engine.checkpoint import check_resumable, read_checkpoint, restore_rng, rng_state, save_checkpoint
from training.engine.config import TrainConfig
from training.engine.distributed import World, gather_shards, gather_states, mean_over_world, training_device
from training.engine.losses import training_loss
from training.errors import ConfigError
from training.features.augment import augment
from training.features.windows import InferenceWindows, TrackWindows

# Ranks > 0 seed their own streams (augmentation, dropout) this far apart from rank 0's: ranks
# must not augment alike. Rank 0 draws exactly what a single process draws.
RANK_SEED_STRIDE = 1_000_003


def seed_everything(seed: int) -> None:
    """One seed for Python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    """Learning rate at `step`: linear warm-up to `base_lr`, then cosine decay to 1 % of it."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU. Raises `ConfigError` for a CUDA device torch cannot see."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device}: torch sees no CUDA device on this machine")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {device}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(device)


def build_network(config: TrainConfig, labels: Sequence[str]) -> torch.nn.Module:
    """The network `config.arch` names, for `labels` (`training.models.registry`)."""
    return config.architecture.function("build")(config, list(labels))


def logits_of(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """A network's logits: its output, or the first of its outputs (the rest are extras, e.g. an embedding)."""
    return output[0] if isinstance(output, tuple) else output


@torch.no_grad()
def predict_windows(model: torch.nn.Module, windows: np.ndarray, device: torch.device, batch: int = 256) -> np.ndarray:
    """Softmax probabilities for windows (n, ...) of what the network reads -> (n, n_labels), numpy."""
    model.eval()
    out = [
        F.softmax(
            logits_of(model(torch.from_numpy(np.ascontiguousarray(windows[i : i + batch], np.float32)).to(device))),
            dim=1,
        )
        .cpu()
        .numpy()
        for i in range(0, len(windows), batch)
    ]
    return np.concatenate(out)


def track_probabilities(
    model: torch.nn.Module, windows: Sequence[np.ndarray], device: torch.device
) -> list[np.ndarray]:
    """Per-track window probabilities: each track's windows (n_windows, ...) -> (n_windows, n_labels)."""
    probs = predict_windows(model, np.concatenate(windows), device)
    bounds = np.cumsum([0] + [len(w) for w in windows])
    return [probs[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def validation_record(probs: list[np.ndarray], valid: InferenceWindows) -> dict[str, float]:
    """Validation figures of one epoch from per-track window probabilities, tracks judged by `vote`."""
    verdicts = [vote(p, valid.labels) for p in probs]
    masks = valid.masks
    in_set = [
        sum(dict(v.genres)[valid.labels[k]] for k in np.flatnonzero(m)) for v, m in zip(verdicts, masks, strict=True)
    ]
    return {
        "valid_loss": float(np.mean([-np.log(p + 1e-9) for p in in_set])),
        "valid_track_accuracy": float(
            np.mean([m[valid.labels.index(v.top)] for v, m in zip(verdicts, masks, strict=True)])
        ),
        "valid_window_accuracy": float(
            np.mean(np.concatenate([m[p.argmax(1)] for p, m in zip(probs, masks, strict=True)]))
        ),
    }


@dataclasses.dataclass
class FitResult:
    model: torch.nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float


def fit(
    train: TrackWindows,
    valid: InferenceWindows | None,
    config: TrainConfig,
    out_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
    init_state: dict[str, torch.Tensor] | None = None,
    resume: bool = False,
    world: World = World(),
) -> FitResult:
    """Train a network on `train`; with `valid` (the windows inference would analyse in each
    validation track), keep the epoch of best validation track accuracy.

    out_dir: where ``config.json`` (the resolved `config`), ``history.json`` and checkpoints
    (``last.pt`` each epoch, ``best.pt``) go; with `resume`, training continues from ``last.pt``
    there exactly as if never stopped, and a config that differs from that run's is refused
    (`ResumeMismatchError`) before anything is written.
    init_state: weights to start from (layers whose shapes differ are left as initialised).
    world: the processes training together under torchrun (`training.engine.distributed`: each trains on
    its slice of every global batch of `config.batch_size` windows; gradients are averaged, the
    loss and validation gathered, and only rank 0 writes files or logs). A run resumes with any
    world size; with the size it was saved with, exactly.
    """
    start_time = time.time()
    if config.distill_weight > 0 and train.teacher_probs is None:
        raise ConfigError("distill_weight > 0 needs the teacher's probabilities of the training tracks (set teacher)")
    if config.batch_size < world.size:
        raise ConfigError(
            f"batch_size {config.batch_size} is the global batch, shared by {world.size} processes: each needs at "
            f"least one window a step; raise it (--set batch_size={world.size * 32})"
        )
    if not world.is_main:
        log = _silent
    out = Path(out_dir) if out_dir else None
    steps_per_epoch = max(1, len(train) * config.windows_per_track // config.batch_size)
    resumed = None
    if resume and out and (out / "last.pt").exists():
        resumed = read_checkpoint(out / "last.pt")
        check_resumable(resumed, out / "last.pt", config, train.labels, train.frontend, steps_per_epoch)
    device = training_device(world, resolve_device(config.device))
    seed_everything(config.seed + RANK_SEED_STRIDE * world.rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    model = build_network(config, train.labels).to(device)
    if init_state is not None and resumed is None:
        own = model.state_dict()
        model.load_state_dict(
            {k: v for k, v in init_state.items() if k in own and own[k].shape == v.shape}, strict=False
        )
    # Each group learns at lr x its scale (pretrained or inherited layers slower than new ones).
    groups = [{"params": params, "lr_scale": scale} for params, scale in model.parameter_groups(config) if params]
    opt = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    total = steps_per_epoch * config.epochs
    rng = np.random.default_rng(config.seed)  # batches and crops: alike on every rank
    gen = torch.Generator().manual_seed(config.seed + RANK_SEED_STRIDE * world.rank)  # augmentation
    history: list[dict[str, float]] = []
    best = (-1.0, 0, copy.deepcopy(model.state_dict()))
    first_epoch = 1
    if resumed is not None:
        model.load_state_dict(resumed["state_dict"])
        opt.load_state_dict(resumed["optimizer"])
        history, first_epoch = resumed["history"], resumed["epoch"] + 1
        best = (resumed["best_accuracy"], resumed["best_epoch"], resumed["best_state"])
        states = resumed["rng"]
        if len(states) == world.size:
            restore_rng(states[world.rank], rng, gen)
        else:  # another world size: the shared stream continues, each rank's own is seeded anew
            restore_rng(states[0], rng, gen)
            reseed = config.seed + RANK_SEED_STRIDE * world.rank + first_epoch
            torch.manual_seed(reseed)
            gen.manual_seed(reseed)
            log(f"the run was saved by {len(states)} processes, resumed by {world.size}: augmentation reseeded")
        log(f"resuming after epoch {resumed['epoch']}")
    if out and world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        run = {"world_size": world.size, "backend": world.backend or "none"}
        (out / "config.json").write_text(json.dumps({**config.to_dict(), "run": run}, indent=1))
    net = model
    if world.distributed:  # gradients averaged over the ranks in backward
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    mine = slice(world.rank, None, world.size)  # this rank's windows of each global batch

    def checkpoint(epoch: int, **extra: Any) -> dict[str, Any]:
        """What rebuilds the model (and, with `extra`, resumes the run): plain values and tensors."""
        return {
            "model_config": model.model_config(),
            "train_config": config.to_dict(),
            "labels": list(train.labels),
            "frontend": train.frontend.to_dict(),
            "state_dict": model.state_dict(),
            "history": history,
            "training_data": {"n_tracks": len(train), "sources": sorted({t.source for t in train.tracks})},
            "epoch": epoch,
            **extra,
        }

    for epoch in range(first_epoch, config.epochs + 1):
        net.train()
        losses = []
        epoch_started = time.time()
        for step in range(steps_per_epoch):
            lr = lr_at(
                (epoch - 1) * steps_per_epoch + step, total, config.lr, int(config.warmup_epochs * steps_per_epoch)
            )
            for group in opt.param_groups:
                group["lr"] = lr * group["lr_scale"]
            # Every rank draws the whole batch (one shared stream) and trains on its slice.
            idx = train.balanced_indices(config.batch_size, rng, config.class_balance)
            x = torch.from_numpy(train.random_crops(idx, rng)[mine]).to(device)
            masks = torch.from_numpy(train.masks[idx][mine]).to(device)  # the labels each window may carry
            teacher = None
            if config.distill_weight > 0:  # (1 - w) x the label's loss + w x the teacher's view of the track
                teacher = torch.from_numpy(train.teacher_probs[idx][mine]).float().to(device)
            mix = None  # cached backbone features: the network adds its own noise (feature_noise)
            if not train.rows:
                x, mix = augment(x, config.augment, gen)
            loss = training_loss(logits_of(net(x)), masks, config.label_smoothing, teacher, config.distill_weight, mix)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        train_seconds = time.time() - epoch_started
        record = {
            "epoch": epoch,
            # Training windows of the whole world per second (validation not counted).
            "windows_per_s": steps_per_epoch * config.batch_size / train_seconds,
            "train_loss": mean_over_world(float(np.mean(losses)), world, device),
            "lr": opt.param_groups[-1]["lr"],
            "seconds": time.time() - start_time,
        }
        if valid is not None and len(valid):
            # Each rank predicts its share of the tracks; all get all, so all decide alike.
            probs = gather_shards(track_probabilities(model, world.shard(valid.windows), device), world)
            record |= validation_record(probs, valid)
            if record["valid_track_accuracy"] > best[0] or not config.keep_best:
                best = (record["valid_track_accuracy"], epoch, copy.deepcopy(model.state_dict()))
        else:
            best = (0.0, epoch, copy.deepcopy(model.state_dict()))
        history.append(record)
        states = gather_states(rng_state(rng, gen), world)  # every rank's generators, for an exact resume
        if out and world.is_main:
            save_checkpoint(
                out / "last.pt",
                checkpoint(
                    epoch, optimizer=opt.state_dict(), steps_per_epoch=steps_per_epoch, best_accuracy=best[0],
                    best_epoch=best[1], best_state=best[2], rng=states,
                ),
            )  # fmt: skip
        log(
            "epoch {epoch:3d}  loss {train_loss:.3f}".format(**record)
            + "".join(
                f"  {k.replace('_', ' ')} {record[k]:.3f}"
                for k in ("valid_loss", "valid_track_accuracy", "valid_window_accuracy")
                if k in record
            )
            + f"  ({record['seconds']:.0f} s, {record['windows_per_s']:.0f} windows/s)"
        )
        if valid is not None and config.keep_best and config.patience and epoch - best[1] >= config.patience:
            log(f"stopping: no better validation track accuracy for {config.patience} epochs")
            break
    model.load_state_dict(best[2])
    if out and world.is_main:
        save_checkpoint(out / "best.pt", checkpoint(best[1]))
        (out / "history.json").write_text(json.dumps(history, indent=1))
    return FitResult(model, history, best[1], time.time() - start_time)


def _silent(line: str) -> None:
    """The log of ranks other than 0: rank 0 speaks for all."""
