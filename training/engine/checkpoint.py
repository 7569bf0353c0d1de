"""Checkpoints of a training run: what rebuilds the model, and what resumes the run exactly.

A checkpoint holds the model's configuration, labels and front end (so it rebuilds without code
defaults), its weights, and, for ``last.pt``, everything a resumed run needs to continue as if
never stopped: optimiser, schedule position, best epoch so far, and the state of every random
generator (Python's, numpy's global and the run's own `Generator`, torch's global, CPU and CUDA,
and the run's `torch.Generator`). Everything is stored as tensors and plain Python values, so
checkpoints load with ``torch.load(..., weights_only=True)``: loading one runs no code.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genre_model import FrontendConfig
from training.atomic import replaced_atomically
from training.engine.config import TrainConfig
from training.errors import ConfigError, ResumeMismatchError
from training.models.registry import architecture


def save_checkpoint(path: Path, ck: dict[str, Any]) -> None:
    """Write `ck` whole or not at all: an interrupted save leaves the old file whole."""
    with replaced_atomically(path) as tmp:
        torch.save(ck, tmp)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's contents, tensors on the CPU; nothing in the file is executed."""
    return torch.load(path, map_location="cpu", weights_only=True)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the network stored in a checkpoint (what the loop trained: for a head on a frozen
    backbone, the head); returns (network in eval mode, checkpoint dict)."""
    ck = read_checkpoint(path)
    model = rebuild_network(ck["model_config"])
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, ck


def rebuild_network(model_config: dict[str, Any]) -> torch.nn.Module:
    """The network a checkpoint's or model file's ``model_config`` describes, as its architecture builds it."""
    return architecture(model_config["arch"]).function("rebuild")(model_config)


def rng_state(rng: np.random.Generator, gen: torch.Generator) -> dict[str, Any]:
    """The state of every random generator a training step draws from, as tensors and plain values.

    rng: the run's numpy generator (batches, crops); gen: its torch generator (augmentation).
    Torch's global generators serve dropout and mixup's Beta draw.
    """
    numpy_global = np.random.get_state(legacy=False)
    numpy_global["state"]["key"] = torch.from_numpy(numpy_global["state"]["key"].astype(np.int64))
    return {
        "python": random.getstate(),
        "numpy_global": numpy_global,
        "numpy": rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "torch_generator": gen.get_state(),
    }


def restore_rng(state: dict[str, Any], rng: np.random.Generator, gen: torch.Generator) -> None:
    """Put every generator back in the state `rng_state` saved (`rng` and `gen` in place)."""
    random.setstate(state["python"])
    numpy_global = dict(state["numpy_global"])
    numpy_global["state"] = {
        **numpy_global["state"],
        "key": state["numpy_global"]["state"]["key"].numpy().astype(np.uint32),
    }
    np.random.set_state(numpy_global)
    rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if state["torch_cuda"] and torch.cuda.is_available() and len(state["torch_cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
    gen.set_state(state["torch_generator"])


def check_resumable(
    ck: dict[str, Any],
    path: Path,
    config: TrainConfig,
    labels: list[str],
    frontend: FrontendConfig,
    steps_per_epoch: int,
) -> None:
    """Raise `ResumeMismatchError` naming what differs between the interrupted run in `ck` and this one:
    settings (all but `ENVIRONMENT_KEYS`), labels, front end, or steps per epoch (the training tracks)."""
    try:
        saved = TrainConfig.from_dict(ck["train_config"], str(path))
    except (KeyError, ConfigError) as exc:
        raise ResumeMismatchError(f"{path}: cannot resume, the checkpoint's settings are unreadable: {exc}") from None
    old, new = saved.to_dict(), config.to_dict()
    differ = []
    for key in config.differences(saved):
        *parents, leaf = key.split(".")
        a, b = old, new
        for part in parents:
            a, b = a[part], b[part]
        differ.append(f"{key} ({a[leaf]!r} -> {b[leaf]!r})")
    if list(ck["labels"]) != list(labels):
        differ.append(f"labels ({', '.join(ck['labels'])} -> {', '.join(labels)})")
    if ck["frontend"] != frontend.to_dict():
        differ.append("frontend")
    if ck["steps_per_epoch"] != steps_per_epoch:
        differ.append(f"steps per epoch, i.e. the training tracks ({ck['steps_per_epoch']} -> {steps_per_epoch})")
    if differ:
        raise ResumeMismatchError(
            f"{path}: cannot resume a run made with other settings; these differ: {'; '.join(differ)}. "
            "Resume with the run's own settings (its config.json) or start a new run in another folder"
        )
