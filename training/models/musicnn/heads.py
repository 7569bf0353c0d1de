"""A genre classifier on the pretrained MSD_musicnn: its top blocks fine-tuned, a new output layer.

Two depths of fine-tuning, both on cached outputs of the frozen part, both trained by the one
loop (`training.engine.loop.fit`) with the settings of a `TrainConfig` recipe:
- `BackendHead` (arch ``musicnn-backend``): the front end and mid-end stay frozen and their pooled
  output (1506 per window) is cached; the back end (batch norm over the pooled features, dense
  1506 -> 200, ReLU, batch norm: musicnn's 'penultimate') starts from the pretrained weights and is
  fine-tuned at a lower rate than the new 200 -> n_labels output layer.
- `MidendHead` (arch ``musicnn-midend``, partial fine-tuning): only the front end is frozen and its
  output (561 x 187 per window) is cached; the mid-end's three 1-D convs learn too, at a lower rate
  still. The front end holds ~95 % of the multiply-adds, so this costs ~3 ms a window per step on
  2 CPU cores where the whole network costs ~300.
`MusicnnGenre` joins backbone and either head for export.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from training.models.musicnn.constants import EMBEDDING_UNITS, POOLED_FEATURES, TF_BN_EPS
from training.models.musicnn.network import Musicnn, interleave_pools, load_pretrained, midend_pools

if TYPE_CHECKING:
    from training.engine.config import TrainConfig

BACKBONE = "msd_musicnn"  # the pretrained network both heads continue
# Parameter-name prefixes of the pretrained back end in a `BackendHead` (all but the new output layer).
_PRETRAINED_BACKEND = ("pool_norm.", "dense.", "dense_norm.")


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

    def model_config(self) -> dict[str, Any]:
        return {"arch": "musicnn-backend", "n_labels": self.classifier.out_features, "dropout": self.dropout.p}

    def parameter_groups(self, config: TrainConfig) -> list[tuple[list[nn.Parameter], float]]:
        """The pretrained back end at ``backbone_lr_scale``, the new output layer at 1."""
        named = list(self.named_parameters())
        return [
            ([p for n, p in named if n.startswith(_PRETRAINED_BACKEND)], config.backbone_lr_scale),
            ([p for n, p in named if not n.startswith(_PRETRAINED_BACKEND)], 1.0),
        ]

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

    def model_config(self) -> dict[str, Any]:
        return {**self.backend.model_config(), "arch": "musicnn-midend"}

    def parameter_groups(self, config: TrainConfig) -> list[tuple[list[nn.Parameter], float]]:
        """The mid-end at ``midend_lr_scale``, then the back end's groups."""
        return [(list(self.midend.parameters()), config.midend_lr_scale), *self.backend.parameter_groups(config)]

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


def build_backend(config: TrainConfig, labels: Sequence[str]) -> BackendHead:
    """The registry's ``build`` for ``musicnn-backend``: MSD_musicnn's back end, a new output layer
    for `labels` (from the tag layer with ``init_from_tags``), `config.feature_noise` on its
    normalised input while training."""
    backbone = load_pretrained(BACKBONE)
    head = BackendHead.pretrained(len(labels), config.dropout, backbone)
    head.noise = config.feature_noise
    if config.init_from_tags:
        init_from_tags(head, labels, backbone)
    return head


def build_midend(config: TrainConfig, labels: Sequence[str]) -> MidendHead:
    """The registry's ``build`` for ``musicnn-midend``: MSD_musicnn's mid-end and back end, a new output layer."""
    backbone = load_pretrained(BACKBONE)
    head = MidendHead.pretrained(len(labels), config.dropout, backbone)
    head.backend.noise = config.feature_noise
    if config.init_from_tags:
        init_from_tags(head.backend, labels, backbone)
    return head


@functools.cache
def genre_tags() -> dict[str, tuple[str, ...]]:
    """{our label: the MSD tags that name it} (``genre_tags.yaml`` beside this module)."""
    import yaml

    data = yaml.safe_load(Path(__file__).with_name("genre_tags.yaml").read_text())
    return {str(label): tuple(tags) for label, tags in data.items()}


@torch.no_grad()
def init_from_tags(head: BackendHead, labels: Sequence[str], backbone: Musicnn) -> list[str]:
    """Start `head`'s output row of each label as the mean of musicnn's tag-layer rows of its tags
    (weights (200,) and bias): the head then scores a label as the pretrained tagger scores its
    tags. Labels without a tag keep their fresh row, its bias lowered to the tagged rows' mean so
    they neither dominate nor vanish. Returns the labels that had no tag."""
    from training.data.genres import genre_key
    from training.models.musicnn.network import pretrained_labels

    tag_index = {tag: k for k, tag in enumerate(pretrained_labels(BACKBONE))}
    by_key = {genre_key(label): tags for label, tags in genre_tags().items()}
    untagged, tagged_bias = [], []
    for row, label in enumerate(labels):
        rows = [tag_index[t] for t in by_key.get(genre_key(label), ())]
        if not rows:
            untagged.append(label)
            continue
        head.classifier.weight[row] = backbone.classifier.weight[rows].mean(dim=0)
        head.classifier.bias[row] = backbone.classifier.bias[rows].mean()
        tagged_bias.append(float(head.classifier.bias[row]))
    for label in untagged:
        if tagged_bias:
            head.classifier.bias[list(labels).index(label)] = sum(tagged_bias) / len(tagged_bias)
    return untagged


def rebuild(model_config: dict[str, Any]) -> Head:
    """A head of the shape a checkpoint records (weights to be loaded into it)."""
    backend = BackendHead(model_config["n_labels"], model_config["dropout"])
    if model_config["arch"] == "musicnn-backend":
        return backend
    return MidendHead(copy.deepcopy(Musicnn().midend), backend)


def with_backbone(head: Head) -> MusicnnGenre:
    """The registry's ``exportable``: the pretrained backbone's frozen part and `head`, log-mel in."""
    return MusicnnGenre(load_pretrained(BACKBONE), head)
