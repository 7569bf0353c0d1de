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

A `BackendHead` may keep musicnn's own tag output beside what it learns (``tag_prior_weight`` w > 0):
an untouched copy of the pretrained back end and tag layer read as our labels (`tag_prior`) is
mixed into its probabilities outside training, ``p = (1 - w) softmax(logits) + w p_tags``. The
fine-tuning on a few hundred clips trades the tagger's knowledge of 240,000 commercial songs for
the pool's collections; the prior keeps some of it (docs/BENCHMARKS.md, issue 22, round 3/4).
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
        self.tag_prior: BackendHead | None = None  # frozen, see `attach_prior`
        self.prior_weight = 0.0

    @classmethod
    def pretrained(cls, n_labels: int, dropout: float = 0.5, backbone: Musicnn | None = None) -> BackendHead:
        """The back end of MSD_musicnn with a new, randomly initialised output layer."""
        backbone = backbone or load_pretrained("msd_musicnn")
        head = cls(n_labels, dropout)
        for name in ("pool_norm", "dense", "dense_norm"):
            getattr(head, name).load_state_dict(getattr(backbone, name).state_dict())
        return head

    def attach_prior(self, prior: BackendHead, weight: float) -> None:
        """Mix `prior`'s probabilities into this head's with `weight` outside training. `prior` is
        frozen: no gradients, never in training mode (its batch norms keep the pretrained statistics)."""
        if not 0 < weight < 1:
            raise ValueError(f"the prior's weight must be in (0, 1), got {weight}")
        prior.requires_grad_(False)
        self.tag_prior, self.prior_weight = prior.eval(), float(weight)

    def train(self, mode: bool = True) -> BackendHead:
        super().train(mode)
        if self.tag_prior is not None:
            self.tag_prior.eval()
        return self

    def model_config(self) -> dict[str, Any]:
        config = {"arch": "musicnn-backend", "n_labels": self.classifier.out_features, "dropout": self.dropout.p}
        if self.tag_prior is not None:
            config["tag_prior_weight"] = self.prior_weight
        return config

    def parameter_groups(self, config: TrainConfig) -> list[tuple[list[nn.Parameter], float]]:
        """The pretrained back end at ``backbone_lr_scale``, the new output layer at 1 (the frozen prior: none)."""
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        return [
            ([p for n, p in named if n.startswith(_PRETRAINED_BACKEND)], config.backbone_lr_scale),
            ([p for n, p in named if not n.startswith(_PRETRAINED_BACKEND)], 1.0),
        ]

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, n_labels), embedding (B, 200)). With a prior and outside training the
        "logits" are the log of the mixed probabilities, so a softmax of them gives the mixture."""
        x = self.pool_norm(pooled)
        if self.training and self.noise > 0:
            x = x + self.noise * torch.randn_like(x)
        embedding = self.dense_norm(F.relu(self.dense(self.dropout(x))))  # (B, 200)
        logits = self.classifier(self.dropout(embedding))
        if self.tag_prior is not None and not self.training:
            w = self.prior_weight
            mixed = (1 - w) * torch.softmax(logits, dim=1) + w * torch.softmax(self.tag_prior(pooled)[0], dim=1)
            logits = torch.log(mixed)  # > -inf: the first term is > 0
        return logits, embedding


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
    if config.tag_prior_weight > 0:
        # Built on a forked random state: the learnt head starts as it would without a prior.
        with torch.random.fork_rng(devices=[]):
            head.attach_prior(tag_prior(labels, backbone), config.tag_prior_weight)
    return head


def tag_prior(labels: Sequence[str], backbone: Musicnn | None = None) -> BackendHead:
    """MSD_musicnn's back end and tag layer read as `labels` (`init_from_tags`), untrained, in eval
    mode; labels no tag names can never win (bias -1e4: their probability is 0 in float32)."""
    backbone = backbone or load_pretrained(BACKBONE)
    head = BackendHead.pretrained(len(labels), 0.0, backbone)
    with torch.no_grad():
        for label in init_from_tags(head, labels, backbone):
            head.classifier.bias[list(labels).index(label)] = -1e4
    return head.eval()


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
    if model_config.get("tag_prior_weight"):
        backend.attach_prior(BackendHead(model_config["n_labels"], 0.0), model_config["tag_prior_weight"])
    if model_config["arch"] == "musicnn-backend":
        return backend
    return MidendHead(copy.deepcopy(Musicnn().midend), backend)


def with_backbone(head: Head) -> MusicnnGenre:
    """The registry's ``exportable``: the pretrained backbone's frozen part and `head`, log-mel in."""
    return MusicnnGenre(load_pretrained(BACKBONE), head)
