"""A genre classifier on the pretrained MSD_musicnn: its back end fine-tuned, a new output layer.

The backbone's front end and mid-end stay frozen (their pooled outputs can be cached); the back
end (batch norm over the 1506 pooled features, dense 1506 -> 200, ReLU, batch norm: musicnn's
'penultimate') starts from the pretrained weights and is fine-tuned at a lower rate than the new
200 -> n_labels output layer. `MusicnnGenre` joins backbone and head for export.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.musicnn import TF_BN_EPS, Musicnn, load_pretrained


@dataclasses.dataclass
class BackendConfig:
    """Fine-tuning of the back end on cached pooled features (one row per 3-s window).

    lr: AdamW rate of the new output layer; the pretrained back end learns at lr * backbone_lr_scale.
    class_balance: sampling weight of a window ~ (its label's window count) ** -class_balance
        (0: as found, 1: every label equally often).
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


class BackendHead(nn.Module):
    """(batch, 1506) pooled mid-end features, musicnn's interleaved order -> (logits, embedding)."""

    def __init__(self, n_labels: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.pool_norm = nn.BatchNorm1d(1506, eps=TF_BN_EPS)
        self.dense = nn.Linear(1506, 200)
        self.dense_norm = nn.BatchNorm1d(200, eps=TF_BN_EPS)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(200, n_labels)
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


class MusicnnGenre(nn.Module):
    """MSD_musicnn's front end and mid-end (frozen) + a `BackendHead`.

    (batch, 96, 187) musicnn log-mel -> (logits (batch, n_labels), embedding (batch, 200)). The
    exported file carries the embedding as a second output, named here: a personal head is
    trained on it without torch.
    """

    extra_outputs = ("embedding",)

    def __init__(self, backbone: Musicnn, head: BackendHead) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.backbone.pooled(x))


def fit_backend(
    pooled: np.ndarray, targets: np.ndarray, n_labels: int, config: BackendConfig, seed: int = 0
) -> BackendHead:
    """Fine-tune `BackendHead.pretrained` on window rows `pooled` (n, 1506) with labels `targets` (n,)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = BackendHead.pretrained(n_labels, config.dropout)
    head.noise = config.feature_noise
    pretrained = [p for n, p in head.named_parameters() if not n.startswith("classifier.")]
    optimiser = torch.optim.AdamW(
        [
            {"params": pretrained, "lr": config.lr * config.backbone_lr_scale},
            {"params": head.classifier.parameters(), "lr": config.lr},
        ],
        weight_decay=config.weight_decay,
    )
    counts = np.bincount(targets, minlength=n_labels).astype(np.float64)
    weights = counts[targets] ** -config.class_balance
    weights /= weights.sum()
    x_all, y_all = torch.from_numpy(np.ascontiguousarray(pooled, np.float32)), torch.from_numpy(targets)
    steps = max(1, len(targets) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=[g["lr"] for g in optimiser.param_groups], total_steps=config.epochs * steps
    )
    head.train()
    for _ in range(config.epochs):
        for _ in range(steps):
            idx = torch.from_numpy(rng.choice(len(targets), config.batch_size, p=weights))
            logits, _ = head(x_all[idx])
            loss = F.cross_entropy(logits, y_all[idx], label_smoothing=config.label_smoothing)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    return head.eval()


@torch.no_grad()
def predict_backend(head: BackendHead, pooled: np.ndarray) -> np.ndarray:
    """Softmax probabilities (n, n_labels) of window rows `pooled` (n, 1506)."""
    head.eval()
    return torch.softmax(head(torch.from_numpy(np.ascontiguousarray(pooled, np.float32)))[0], dim=1).numpy()
