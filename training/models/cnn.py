"""The genre networks: `CNN` and `CRNN`, both built from a `ModelConfig`.

Input to both: log-mel windows (batch, n_mels, n_frames) in dB, as `genre_model.log_mel`
makes them. Output: logits (batch, n_labels). The class count comes from the label list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from training.errors import ConfigError

if TYPE_CHECKING:
    from training.engine.config import TrainConfig


@dataclasses.dataclass
class ModelConfig:
    """Architecture of a genre network; stored in every checkpoint and exported file so it can be rebuilt.

    No field has a default: the settings (arch, channels, dropout, gru_hidden) come from a
    `TrainConfig`, the shapes from the data (`training.engine.loop.model_config`), or all from a file.
    arch: "cnn" (conv blocks + global pooling) or "crnn" (conv blocks + GRU over time).
    n_mels, n_frames: the front end's window shape. n_labels: the number of labels.
    channels: output channels of each conv block; each block halves frequency and time
        (the CRNN's last blocks halve frequency only, to keep time steps for the GRU).
    gru_hidden: GRU state size per direction (CRNN only).
    """

    arch: str
    n_mels: int
    n_frames: int
    n_labels: int
    channels: tuple[int, ...]
    dropout: float
    gru_hidden: int

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        if self.arch not in ("cnn", "crnn"):
            raise ConfigError(f"arch must be 'cnn' or 'crnn', got {self.arch!r}")
        if self.n_labels < 2:
            raise ConfigError("a genre model needs at least two labels")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Parameter-name prefixes of the layers a new vocabulary keeps (front end and conv blocks); the
# rest (a CRNN's GRU, the head) is specific to the labels it was trained on.
BACKBONE_PREFIXES = ("frontend.", "blocks.")


def _conv_block(c_in: int, c_out: int, pool: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(pool),
    )


class _Frontend(nn.Module):
    """Per-mel-band standardisation learnt from the data (BatchNorm over bands)."""

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(n_mels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (batch, n_mels, n_frames) dB -> (batch, 1, n_mels, n_frames), standardised per band
        return self.norm(x).unsqueeze(1)


class _GenreNetwork(nn.Module):
    """What the training loop asks of every network: how to rebuild it and how its parameters learn."""

    config: ModelConfig

    def model_config(self) -> dict[str, Any]:
        return self.config.to_dict()

    def parameter_groups(self, config: TrainConfig) -> list[tuple[list[nn.Parameter], float]]:
        return parameter_groups(self, config)


class CNN(_GenreNetwork):
    """Conv blocks, then mean+max pooling over frequency and time, then a dense classifier."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.frontend = _Frontend(config.n_mels)
        chans = (1, *config.channels)
        self.blocks = nn.Sequential(*[_conv_block(a, b, (2, 2)) for a, b in zip(chans[:-1], chans[1:], strict=True)])
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(2 * chans[-1], config.n_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.frontend(x))  # (batch, C, n_mels / 2^k, n_frames / 2^k)
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)  # (batch, 2C)
        return self.head(pooled)  # (batch, n_labels)


class CRNN(_GenreNetwork):
    """Conv blocks, then a bidirectional GRU over the remaining time steps, then dense."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.frontend = _Frontend(config.n_mels)
        chans = (1, *config.channels)
        n_blocks = len(config.channels)
        # Halve time in the first two blocks only: ~n_frames/4 steps remain for the GRU.
        pools = [(2, 2) if i < 2 else (2, 1) for i in range(n_blocks)]
        self.blocks = nn.Sequential(
            *[_conv_block(a, b, p) for a, b, p in zip(chans[:-1], chans[1:], pools, strict=True)]
        )
        self.gru = nn.GRU(chans[-1], config.gru_hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(2 * config.gru_hidden, config.n_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.frontend(x))  # (batch, C, F', T')
        x = x.mean(dim=2).transpose(1, 2)  # (batch, T', C): a sequence of frame embeddings
        seq, _ = self.gru(x)  # (batch, T', 2 * gru_hidden)
        return self.head(seq.mean(dim=1))  # (batch, n_labels)


def build_model(config: ModelConfig) -> CNN | CRNN:
    """The network named by `config.arch`."""
    return CNN(config) if config.arch == "cnn" else CRNN(config)


def build_from_config(config: TrainConfig, labels: Sequence[str]) -> CNN | CRNN:
    """The network a recipe asks for, shaped for its front end's windows and `labels` (the
    registry's ``build``)."""
    n_labels = len(labels)
    frontend = config.frontend_config()
    return build_model(
        ModelConfig(
            arch=config.arch, n_mels=frontend.n_mels, n_frames=frontend.n_frames, n_labels=n_labels,
            channels=config.channels, dropout=config.dropout, gru_hidden=config.gru_hidden,
        )
    )  # fmt: skip


def rebuild(model_config: dict[str, Any]) -> CNN | CRNN:
    """The network a checkpoint or model file describes (the registry's ``rebuild``)."""
    return build_model(ModelConfig(**model_config))


def as_exportable(network: CNN | CRNN) -> CNN | CRNN:
    """The network reads log-mel windows itself (the registry's ``exportable``)."""
    return network


def parameter_groups(network: nn.Module, config: TrainConfig) -> list[tuple[list[nn.Parameter], float]]:
    """(parameters, learning-rate scale): front end and conv blocks at ``backbone_lr_scale``
    (below 1 when fine-tuning from a trained model), the rest (GRU, head) at 1."""
    named = list(network.named_parameters())
    return [
        ([p for n, p in named if n.startswith(BACKBONE_PREFIXES)], config.backbone_lr_scale),
        ([p for n, p in named if not n.startswith(BACKBONE_PREFIXES)], 1.0),
    ]
