"""Training loop: `TrainConfig`, `fit`, checkpoints, and window-level prediction with torch."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training.augment import AugmentConfig, augment
from training.models import BACKBONE_PREFIXES, ModelConfig, build_model
from training.windows import TrackWindows


@dataclasses.dataclass
class TrainConfig:
    """Everything that decides a training run; saved as ``config.json`` beside its outputs.

    windows_per_track: training windows drawn per training track and epoch.
    class_balance: 1 = sample every label equally often, 0 = as the data has them, between:
        counts ** (1 - class_balance) (see `TrackWindows.balanced_indices`).
    patience: epochs without a better validation track accuracy before stopping (0 = never).
    warmup_epochs: linear learning-rate warm-up before the cosine decay.
    keep_best: return the epoch of best validation track accuracy (else the last epoch, as
        cross-validation must, since its validation fold is its test set).
    backbone_lr_scale: learning rate of the front end and conv blocks relative to `lr` (below 1
        when fine-tuning: the pretrained features move slowly while the new head learns).
    """

    arch: str = "cnn"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    warmup_epochs: float = 1.0
    windows_per_track: int = 6
    class_balance: float = 1.0
    label_smoothing: float = 0.05
    patience: int = 8
    keep_best: bool = True
    eval_windows: int = 8
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    backbone_lr_scale: float = 1.0
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
    """'auto' -> CUDA when available, else CPU; 'cuda' without CUDA raises ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device on this machine")
    return torch.device(device)


@torch.no_grad()
def predict_windows(model: torch.nn.Module, windows: np.ndarray, device: torch.device, batch: int = 256) -> np.ndarray:
    """Softmax probabilities for windows (n, n_mels, n_frames) -> (n, n_labels), numpy."""
    model.eval()
    out = [
        F.softmax(model(torch.from_numpy(windows[i : i + batch]).to(device)), dim=1).cpu().numpy()
        for i in range(0, len(windows), batch)
    ]
    return np.concatenate(out)


def track_probabilities(
    model: torch.nn.Module, data: TrackWindows, device: torch.device, max_windows: int
) -> list[np.ndarray]:
    """Per-track window probabilities, each (n_windows, n_labels), windows placed as inference does."""
    windows = [data.eval_windows(i, max_windows) for i in range(len(data))]
    probs = predict_windows(model, np.concatenate(windows), device)
    bounds = np.cumsum([0] + [len(w) for w in windows])
    return [probs[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


@dataclasses.dataclass
class FitResult:
    model: torch.nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float


def fit(
    train: TrackWindows,
    valid: TrackWindows | None,
    config: TrainConfig,
    out_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
    init_state: dict[str, torch.Tensor] | None = None,
    resume: bool = False,
) -> FitResult:
    """Train a network on `train`; with `valid`, keep the epoch of best validation track accuracy.

    out_dir: where ``config.json``, ``history.json`` and checkpoints (``last.pt`` each epoch,
    ``best.pt``) go; with `resume`, training continues from ``last.pt`` there.
    init_state: weights to start from (layers whose shapes differ are left as initialised).
    """
    start_time = time.time()
    seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    model_cfg = dataclasses.replace(
        config.model,
        arch=config.arch,
        n_mels=train.frontend.n_mels,
        n_frames=train.frontend.n_frames,
        n_labels=len(train.labels),
    )
    model = build_model(model_cfg).to(device)
    if init_state is not None:
        own = model.state_dict()
        model.load_state_dict(
            {k: v for k, v in init_state.items() if k in own and own[k].shape == v.shape}, strict=False
        )
    backbone = [p for name, p in model.named_parameters() if name.startswith(BACKBONE_PREFIXES)]
    rest = [p for name, p in model.named_parameters() if not name.startswith(BACKBONE_PREFIXES)]
    opt = torch.optim.AdamW(
        [{"params": backbone, "lr_scale": config.backbone_lr_scale}, {"params": rest, "lr_scale": 1.0}],
        lr=config.lr,
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = max(1, len(train) * config.windows_per_track // config.batch_size)
    total = steps_per_epoch * config.epochs
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    best = (-1.0, 0, copy.deepcopy(model.state_dict()))
    out = Path(out_dir) if out_dir else None
    first_epoch = 1
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({**config.to_dict(), "model": model_cfg.to_dict()}, indent=1))
        if resume and (out / "last.pt").exists():
            ck = torch.load(out / "last.pt", map_location=device, weights_only=False)
            model.load_state_dict(ck["state_dict"])
            opt.load_state_dict(ck["optimizer"])
            history, first_epoch = ck["history"], ck["epoch"] + 1
            best = (ck["best_accuracy"], ck["best_epoch"], ck["best_state"])
            rng, gen = (
                np.random.default_rng([config.seed, first_epoch]),
                torch.Generator().manual_seed(config.seed + first_epoch),
            )
            log(f"resuming after epoch {ck['epoch']}")
    for epoch in range(first_epoch, config.epochs + 1):
        model.train()
        losses = []
        for step in range(steps_per_epoch):
            lr = lr_at(
                (epoch - 1) * steps_per_epoch + step, total, config.lr, int(config.warmup_epochs * steps_per_epoch)
            )
            for group in opt.param_groups:
                group["lr"] = lr * group["lr_scale"]
            idx = train.balanced_indices(config.batch_size, rng, config.class_balance)
            x = torch.from_numpy(train.random_crops(idx, rng)).to(device)
            y = torch.from_numpy(train.targets[idx]).to(device)
            x, soft = augment(x, y, len(train.labels), config.augment, gen)
            soft = soft * (1 - config.label_smoothing) + config.label_smoothing / len(train.labels)
            loss = torch.sum(-soft * F.log_softmax(model(x), dim=1), dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "lr": opt.param_groups[-1]["lr"],
            "seconds": time.time() - start_time,
        }
        if valid is not None and len(valid):
            probs = track_probabilities(model, valid, device, config.eval_windows)
            record["valid_track_accuracy"] = float(
                np.mean([p.mean(0).argmax() == t for p, t in zip(probs, valid.targets)])
            )
            record["valid_window_accuracy"] = float(
                np.mean(np.concatenate([p.argmax(1) == t for p, t in zip(probs, valid.targets)]))
            )
            record["valid_loss"] = float(np.mean([-np.log(p.mean(0)[t] + 1e-9) for p, t in zip(probs, valid.targets)]))
            if record["valid_track_accuracy"] > best[0] or not config.keep_best:
                best = (record["valid_track_accuracy"], epoch, copy.deepcopy(model.state_dict()))
        else:
            best = (0.0, epoch, copy.deepcopy(model.state_dict()))
        history.append(record)
        log(
            "epoch {epoch:3d}  loss {train_loss:.3f}".format(**record)
            + "".join(
                f"  {k.replace('_', ' ')} {record[k]:.3f}"
                for k in ("valid_loss", "valid_track_accuracy", "valid_window_accuracy")
                if k in record
            )
            + f"  ({record['seconds']:.0f} s)"
        )
        if out:
            save_checkpoint(
                out / "last.pt",
                model,
                model_cfg,
                config,
                train,
                history,
                extra={
                    "optimizer": opt.state_dict(),
                    "epoch": epoch,
                    "best_accuracy": best[0],
                    "best_epoch": best[1],
                    "best_state": best[2],
                },
            )
        if valid is not None and config.keep_best and config.patience and epoch - best[1] >= config.patience:
            log(f"stopping: no better validation track accuracy for {config.patience} epochs")
            break
    model.load_state_dict(best[2])
    if out:
        save_checkpoint(out / "best.pt", model, model_cfg, config, train, history, extra={"epoch": best[1]})
        (out / "history.json").write_text(json.dumps(history, indent=1))
    return FitResult(model, history, best[1], time.time() - start_time)


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    model_cfg: ModelConfig,
    config: TrainConfig,
    data: TrackWindows,
    history: list[dict[str, float]],
    extra: dict[str, Any] | None = None,
) -> None:
    """A checkpoint that rebuilds the model without code defaults: config, labels, front end, weights."""
    ck = {
        "model_config": model_cfg.to_dict(),
        "train_config": config.to_dict(),
        "labels": list(data.labels),
        "frontend": data.frontend.to_dict(),
        "state_dict": model.state_dict(),
        "history": history,
        "training_data": {"n_tracks": len(data), "sources": sorted({t.source for t in data.tracks})},
        **(extra or {}),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(ck, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint; returns (model in eval mode, checkpoint dict)."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(ModelConfig(**ck["model_config"]))
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, ck
