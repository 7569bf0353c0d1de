"""PyTorch port of the pretrained musicnn taggers (musicnn 0.1.0: MSD_musicnn and MSD_vgg).

Pons & Serra, "musicnn: pre-trained convolutional neural networks for music audio tagging",
ISMIR 2019 late-breaking demo. Weights converted once from the TensorFlow checkpoints in the
musicnn wheel by tools/musicnn_convert/convert.py (provenance: training/pretrained/README.md).

Input: musicnn's own features (`tools/musicnn_convert/reference_features.py`: log10(1 + 10000 * mel), 96 Slaney
mel bands, 16 kHz, hop 256), *not* the project's dB log-mel. musicnn's TF graph takes
(batch, 187 frames, 96 bands); these modules take our layout (batch, 96 bands, n_frames) and
transpose inside. n_frames is 187 (3 s) for MSD_vgg; MSD_musicnn pools over time and accepts
other lengths, but it was trained on 187.

The layers follow musicnn.models line by line; in eval mode (`model.eval()`) they reproduce TF's
inference graph (is_training=False): dropout off, batch norms use their moving statistics with
TF's epsilon 0.001. Note musicnn's order is conv -> ReLU -> batch norm throughout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from genre_model.errors import ModelError
from training.errors import ConfigError
from training.models.musicnn.constants import (
    EMBEDDING_UNITS,
    FRONTEND_CHANNELS,
    MIDEND_FILTERS,
    N_MELS,
    N_TAGS,
    POOLED_FEATURES,
    TEMPORAL_FILTERS,
    TF_BN_EPS,
    TIMBRAL_FILTERS,
    VGG_FILTERS,
)

PRETRAINED_DIR = Path(__file__).resolve().parents[2] / "pretrained"  # training/pretrained
PRETRAINED = ("msd_musicnn", "msd_vgg")


class MusicnnOutput(NamedTuple):
    """MSD_musicnn's outputs; names as in musicnn.extractor's feature dictionary.

    logits, probabilities: (batch, 50) tag scores and their sigmoid.
    embedding: (batch, 200) musicnn's 'penultimate': batch norm of ReLU(dense), as TF returns it.
    max_pool, mean_pool: (batch, 753) mid-end features pooled over time.
    """

    logits: torch.Tensor
    probabilities: torch.Tensor
    embedding: torch.Tensor
    max_pool: torch.Tensor
    mean_pool: torch.Tensor


class VggOutput(NamedTuple):
    """MSD_vgg's outputs: logits, probabilities (batch, 50); embedding (batch, 256), flatten(pool5)
    in TF's (time, band, channel) order, the input of its output layer."""

    logits: torch.Tensor
    probabilities: torch.Tensor
    embedding: torch.Tensor


class _ConvReluNorm(nn.Module):
    """conv -> ReLU -> batch norm, musicnn's block order (the norm comes after the ReLU)."""

    def __init__(self, conv: nn.Module, channels: int, norm: type[nn.Module]) -> None:
        super().__init__()
        self.conv = conv
        self.norm = norm(channels, eps=TF_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(F.relu(self.conv(x)))


def _to_image(x: torch.Tensor) -> torch.Tensor:
    # (batch, n_mels, n_frames), our layout -> (batch, 1, n_frames, n_mels): TF's NHWC
    # (batch, time, band, 1) read as NCHW, so kernels are (time, band) as in the checkpoint.
    if x.dim() != 3 or x.shape[1] != N_MELS:
        raise ValueError(f"expected (batch, {N_MELS}, n_frames) log-mel patches, got {tuple(x.shape)}")
    return x.transpose(1, 2).unsqueeze(1)


class Musicnn(nn.Module):
    """MSD_musicnn: musically motivated front end, dense mid-end, global pooling back end.

    Sizes as `musicnn.models.build_musicnn(num_filt_frontend=1.6, num_filt_midend=64,
    num_units_backend=200)`, the MSD_musicnn configuration of the 0.1.0 wheel.
    """

    def __init__(self, n_tags: int = N_TAGS) -> None:
        super().__init__()
        self.input_norm = nn.BatchNorm2d(1, eps=TF_BN_EPS)  # one mean/variance for the whole patch
        # Timbral: 204 (= int(1.6 * 128)) filters 7 frames wide spanning 38 and 67 of 96 bands
        # (int(0.4 * 96), int(0.7 * 96)), 'valid' over bands, time padded by 3 on each side.
        self.timbral = nn.ModuleList(
            _ConvReluNorm(nn.Conv2d(1, TIMBRAL_FILTERS, (7, bands)), TIMBRAL_FILTERS, nn.BatchNorm2d)
            for bands in (38, 67)
        )
        # Temporal: 51 (= int(1.6 * 32)) filters of 128, 64, 32 frames by 1 band, 'same' padding.
        self.temporal = nn.ModuleList(
            _ConvReluNorm(nn.Conv2d(1, TEMPORAL_FILTERS, (frames, 1)), TEMPORAL_FILTERS, nn.BatchNorm2d)
            for frames in (128, 64, 32)
        )
        # Mid-end: TF's conv2d with a [7, all channels] kernel over a (time, channel, 1) image is a
        # 1-D convolution over time with 7 taps; its [3, 3] time padding is Conv1d's padding=3.
        self.midend = nn.ModuleList(
            _ConvReluNorm(nn.Conv1d(c_in, MIDEND_FILTERS, 7, padding=3), MIDEND_FILTERS, nn.BatchNorm1d)
            for c_in in (FRONTEND_CHANNELS, MIDEND_FILTERS, MIDEND_FILTERS)
        )
        self.pool_norm = nn.BatchNorm1d(POOLED_FEATURES, eps=TF_BN_EPS)
        self.dense = nn.Linear(POOLED_FEATURES, EMBEDDING_UNITS)
        self.dense_norm = nn.BatchNorm1d(EMBEDDING_UNITS, eps=TF_BN_EPS)
        self.classifier = nn.Linear(EMBEDDING_UNITS, n_tags)
        self.dropout = nn.Dropout(0.5)  # musicnn's back-end rate; identity in eval mode

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, 96 bands, n_frames) -> (batch, 1506) pooled mid-end features, the back
        end's input before its batch norm, in musicnn's interleaved (max, mean) order."""
        return interleave_pools(*self._midend_pools(x))

    def forward(self, x: torch.Tensor) -> MusicnnOutput:
        """x: (batch, 96 bands, n_frames) musicnn log-mel patches -> `MusicnnOutput`."""
        max_pool, mean_pool = self._midend_pools(x)
        pooled = interleave_pools(max_pool, mean_pool)  # (B, 1506), the back end's input
        pooled = self.dropout(self.pool_norm(pooled))
        embedding = self.dense_norm(F.relu(self.dense(pooled)))  # (B, 200), 'penultimate'
        logits = self.classifier(self.dropout(embedding))  # (B, 50)
        return MusicnnOutput(logits, torch.sigmoid(logits), embedding, max_pool, mean_pool)

    def frontend(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, 96, n_frames) -> (batch, 561, n_frames), the front end's output: 2 x 204
        timbral and 3 x 51 temporal filters, each max-pooled over the bands it leaves. About 95 %
        of the network's multiply-adds are here, so partial fine-tuning caches this output."""
        x = self.input_norm(_to_image(x))  # (B, 1, T, 96)
        padded = F.pad(x, (0, 0, 3, 3))  # time only: 'same' in time, 'valid' in frequency
        timbral = [block(padded).amax(dim=3) for block in self.timbral]  # 2 x (B, 204, T)
        temporal = []
        for block in self.temporal:
            k = block.conv.kernel_size[0]
            # TF 'same' for an even kernel pads (k-1)//2 before and k//2 after.
            temporal.append(block(F.pad(x, (0, 0, (k - 1) // 2, k // 2))).amax(dim=3))  # (B, 51, T)
        return torch.cat(timbral + temporal, dim=1)  # (B, 561, T)

    def _midend_pools(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (batch, 96, n_frames) -> max and mean over time of the mid-end, (B, 753) each."""
        return midend_pools(self.midend, self.frontend(x))


def midend_pools(midend: nn.ModuleList, frontend: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """musicnn's mid-end on a front-end output (B, 561, T) -> its max and mean over time, (B, 753) each.

    Three 1-D convs, the 2nd and 3rd with residual connections; dense connection: the front end
    and every layer's output are concatenated before pooling. A module function so that a head
    that fine-tunes the mid-end on cached front-end outputs runs exactly this code.
    """
    cnn1 = midend[0](frontend)  # (B, 64, T)
    cnn2 = midend[1](cnn1) + cnn1
    cnn3 = midend[2](cnn2) + cnn2
    stacked = torch.cat([frontend, cnn1, cnn2, cnn3], dim=1)  # (B, 753, T)
    return stacked.amax(dim=2), stacked.mean(dim=2)


def interleave_pools(max_pool: torch.Tensor, mean_pool: torch.Tensor) -> torch.Tensor:
    """(B, 753) max and mean -> (B, 1506) in TF's order: it concatenates them on a trailing axis
    and flattens, so the features interleave (max_0, mean_0, max_1, mean_1, ...)."""
    return torch.stack([max_pool, mean_pool], dim=2).flatten(1)


class MusicnnVgg(nn.Module):
    """MSD_vgg: five 3x3 conv blocks of 128 filters, max pooling, one dense layer.

    Needs exactly 187 frames: the flattened pool5 (2 x 1 x 128) feeds a fixed 256 -> 50 layer.
    """

    POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))

    def __init__(self, n_tags: int = N_TAGS, channels: int = VGG_FILTERS) -> None:
        super().__init__()
        self.input_norm = nn.BatchNorm2d(1, eps=TF_BN_EPS)
        self.blocks = nn.ModuleList(
            _ConvReluNorm(nn.Conv2d(c_in, channels, 3, padding=1), channels, nn.BatchNorm2d)
            for c_in in (1, channels, channels, channels, channels)
        )
        # TF max_pooling2d defaults to 'valid', i.e. MaxPool2d's floor mode.
        self.pools = nn.ModuleList(nn.MaxPool2d(size, stride) for size, stride in self.POOLS)
        self.block_dropout = nn.Dropout(0.25)  # identity in eval mode
        self.dropout = nn.Dropout(0.5)
        self.classifier = nn.Linear(2 * 1 * channels, n_tags)

    def forward(self, x: torch.Tensor) -> VggOutput:
        """x: (batch, 96 bands, 187 frames) musicnn log-mel patches -> `VggOutput`."""
        x = self.input_norm(_to_image(x))  # (B, 1, 187, 96)
        for i, (block, pool) in enumerate(zip(self.blocks, self.pools, strict=True)):
            # (B, 128, T, F): 187x96 -> 92x48 -> 46x24 -> 23x12 -> 11x6 -> 2x1
            x = pool(block(self.block_dropout(x) if i else x))
        # TF flattens NHWC: (B, 2, 1, 128) in (time, band, channel) order.
        embedding = x.permute(0, 2, 3, 1).flatten(1)  # (B, 256)
        logits = self.classifier(self.dropout(embedding))  # (B, 50)
        return VggOutput(logits, torch.sigmoid(logits), embedding)


def pretrained_path(name: str) -> Path:
    """The committed safetensors file of pretrained network `name` ("msd_musicnn" or "msd_vgg")."""
    if name not in PRETRAINED:
        raise ConfigError(f"unknown pretrained musicnn network {name!r}; choose one of {PRETRAINED}")
    return PRETRAINED_DIR / f"{name}.safetensors"


def pretrained_labels(name: str) -> list[str]:
    """The 50 MSD tag names of network `name`, in output order (from the weights' metadata)."""
    with safe_open(str(pretrained_path(name)), framework="pt") as f:
        return json.loads(f.metadata()["musicnn"])["labels"]


def load_pretrained(name: str) -> Musicnn | MusicnnVgg:
    """Network `name` ("msd_musicnn" or "msd_vgg") with its converted weights, in eval mode.

    Reads the safetensors file shipped in training/pretrained; never touches the network.
    Raises `ConfigError` for an unknown name, `ModelError` (with the path) when the file is absent
    or does not hold exactly the module's tensors.
    """
    path = pretrained_path(name)
    if not path.is_file():
        raise ModelError(f"{path}: pretrained musicnn weights missing; tools/musicnn_convert writes them")
    model: Musicnn | MusicnnVgg = Musicnn() if name == "msd_musicnn" else MusicnnVgg()
    try:
        # TF keeps no batch counter; every other tensor must come from the checkpoint.
        missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise ModelError(f"{path}: {exc}") from exc
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ModelError(f"{path}: tensors missing {missing}, unexpected {unexpected}")
    return model.eval()
