"""A genre classifier on the pretrained MSD_musicnn: its top blocks fine-tuned, a new output layer.

Two depths of fine-tuning, both on cached outputs of the frozen part:
- `BackendHead` (``tune_midend: false``): the front end and mid-end stay frozen and their pooled
  output (1506 per window) is cached; the back end (batch norm over the pooled features, dense
  1506 -> 200, ReLU, batch norm: musicnn's 'penultimate') starts from the pretrained weights and is
  fine-tuned at a lower rate than the new 200 -> n_labels output layer.
- `MidendHead` (``tune_midend: true``, partial fine-tuning): only the front end is frozen and its
  output (561 x 187 per window) is cached; the mid-end's three 1-D convs learn too, at a lower rate
  still. The front end holds ~95 % of the multiply-adds, so this costs ~3 ms a window per step on
  2 CPU cores where the whole network costs ~300.
`MusicnnGenre` joins backbone and either head for export.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.models.musicnn.constants import EMBEDDING_UNITS, POOLED_FEATURES, TF_BN_EPS
from training.models.musicnn.network import Musicnn, interleave_pools, load_pretrained, midend_pools


@dataclasses.dataclass
class BackendConfig:
    """Fine-tuning of the top of the backbone on cached features (one row per 3-s window).

    lr: AdamW rate of the new output layer; the pretrained back end learns at lr * backbone_lr_scale.
    class_balance: sampling weight of a window ~ (its label's window count) ** -class_balance
        (0: as found, 1: every label equally often).
    tune_midend: also fine-tune the mid-end, at lr * midend_lr_scale, on cached front-end outputs
        (`MidendHead`); an epoch is then len(windows) // batch_size steps as for the back end.
    crop_frames: with tune_midend, each batch sees a random run of this many of the 187 frames
        (0: all), a time-shift augmentation the mid-end's global pooling allows.
    """

    epochs: int = 40
    batch_size: int = 256
    lr: float = 3e-3
    backbone_lr_scale: float = 0.1
    weight_decay: float = 1e-2
    dropout: float = 0.5
    label_smoothing: float = 0.1
    class_balance: float = 1.0
    feature_noise: float = 0.1  # std of Gaussian noise on the normalised pooled features, a light augmentation
    tune_midend: bool = False
    midend_lr_scale: float = 0.03
    crop_frames: int = 0


class BackendHead(nn.Module):
    """(batch, 1506) pooled mid-end features, musicnn's interleaved order -> (logits, embedding)."""

    reads = "pooled"  # the `Musicnn` method whose output this head takes

    def __init__(self, n_labels: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.pool_norm = nn.BatchNorm1d(POOLED_FEATURES, eps=TF_BN_EPS)
        self.dense = nn.Linear(POOLED_FEATURES, EMBEDDING_UNITS)
        self.dense_norm = nn.BatchNorm1d(EMBEDDING_UNITS, eps=TF_BN_EPS)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(EMBEDDING_UNITS, n_labels)
        self.noise = 0.0

    @classmethod
    def pretrained(cls, n_labels: int, dropout: float = 0.5, backbone: Musicnn | None = None) -> BackendHead:
        """The back end of MSD_musicnn with a new, randomly initialised output layer."""
        backbone = backbone or load_pretrained("msd_musicnn")
        head = cls(n_labels, dropout)
        for name in ("pool_norm", "dense", "dense_norm"):
            getattr(head, name).load_state_dict(getattr(backbone, name).state_dict())
        return head

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool_norm(pooled)
        if self.training and self.noise > 0:
            x = x + self.noise * torch.randn_like(x)
        embedding = self.dense_norm(F.relu(self.dense(self.dropout(x))))  # (B, 200)
        return self.classifier(self.dropout(embedding)), embedding


class MidendHead(nn.Module):
    """(batch, 561, T) front-end output -> (logits, embedding): musicnn's mid-end, then a `BackendHead`."""

    reads = "frontend"

    def __init__(self, midend: nn.ModuleList, backend: BackendHead) -> None:
        super().__init__()
        self.midend, self.backend = midend, backend

    @classmethod
    def pretrained(cls, n_labels: int, dropout: float = 0.5, backbone: Musicnn | None = None) -> MidendHead:
        """MSD_musicnn's mid-end and back end with a new, randomly initialised output layer."""
        backbone = backbone or load_pretrained("msd_musicnn")
        return cls(copy.deepcopy(backbone.midend), BackendHead.pretrained(n_labels, dropout, backbone))

    def forward(self, frontend: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backend(interleave_pools(*midend_pools(self.midend, frontend)))


Head = BackendHead | MidendHead


class MusicnnGenre(nn.Module):
    """MSD_musicnn's frozen part + a `BackendHead` or `MidendHead`.

    (batch, 96, 187) musicnn log-mel -> (logits (batch, n_labels), embedding (batch, 200)). The
    exported file carries the embedding as a second output, named here: a personal head is
    trained on it without torch.
    """

    extra_outputs = ("embedding",)

    def __init__(self, backbone: Musicnn, head: Head) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(getattr(self.backbone, self.head.reads)(x))


def fit_backend(features: np.ndarray, targets: np.ndarray, n_labels: int, config: BackendConfig, seed: int = 0) -> Head:
    """Fine-tune a pretrained head on window rows `features` with labels `targets` (n,).

    features: (n, 1506) pooled features for a `BackendHead`, or with ``config.tune_midend``
    (n, 561, 187) front-end outputs (float16 is fine: batches are cast) for a `MidendHead`.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if config.tune_midend:
        head: Head = MidendHead.pretrained(n_labels, config.dropout)
        backend = head.backend
        groups = [{"params": list(head.midend.parameters()), "lr": config.lr * config.midend_lr_scale}]
    else:
        head = backend = BackendHead.pretrained(n_labels, config.dropout)
        groups = []
    backend.noise = config.feature_noise
    pretrained = [p for n, p in backend.named_parameters() if not n.startswith("classifier.")]
    groups += [
        {"params": pretrained, "lr": config.lr * config.backbone_lr_scale},
        {"params": list(backend.classifier.parameters()), "lr": config.lr},
    ]
    optimiser = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    counts = np.bincount(targets, minlength=n_labels).astype(np.float64)
    weights = counts[targets] ** -config.class_balance
    weights /= weights.sum()
    y_all = torch.from_numpy(targets)
    steps = max(1, len(targets) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=[g["lr"] for g in optimiser.param_groups], total_steps=config.epochs * steps
    )
    head.train()
    for _ in range(config.epochs):
        for _ in range(steps):
            idx = rng.choice(len(targets), config.batch_size, p=weights)
            x = torch.from_numpy(np.ascontiguousarray(features[idx], np.float32))
            if config.tune_midend and 0 < config.crop_frames < x.shape[2]:
                start = int(rng.integers(0, x.shape[2] - config.crop_frames + 1))
                x = x[:, :, start : start + config.crop_frames]
            logits, _ = head(x)
            loss = F.cross_entropy(logits, y_all[idx], label_smoothing=config.label_smoothing)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    return head.eval()


@torch.no_grad()
def predict_backend(head: Head, features: np.ndarray, batch: int = 256) -> np.ndarray:
    """Softmax probabilities (n, n_labels) of window rows `features` (what `head` reads)."""
    head.eval()
    out = [
        torch.softmax(head(torch.from_numpy(np.ascontiguousarray(features[b : b + batch], np.float32)))[0], dim=1)
        for b in range(0, len(features), batch)
    ]
    return torch.cat(out).numpy()
