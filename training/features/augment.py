"""Augmentations of log-mel batches (dB), applied on the training device.

Random gain and spectral tilt make the model indifferent to level and to the tonal balance of
a recording chain (a real risk here: the two sources of the pool differ in recording
quality); SpecAugment masks and mixup regularise a small dataset.
"""

from __future__ import annotations

import torch

from training.engine.config import AugmentConfig


def augment(
    x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """Augment a batch x (batch, n_mels, n_frames) dB.

    returns: augmented x, and mixup's (perm (batch,), lam (batch,)) when mixup is on (example i is
    lam_i x itself + (1 - lam_i) x example perm_i; `training.engine.losses.training_loss` mixes the
    targets alike), else None.
    """
    b, n_mels, n_frames = x.shape
    dev = x.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen).to(dev)

    ramp = torch.linspace(-0.5, 0.5, n_mels, device=dev)
    x = x + (uniform(b, 1, 1) * 2 - 1) * cfg.gain_db + (uniform(b, 1, 1) * 2 - 1) * cfg.tilt_db * ramp[None, :, None]
    # Masked cells take each example's mean level, not zero dB (which would be loud).
    fill = x.mean(dim=(1, 2), keepdim=True).expand_as(x)
    for count, max_width, size, axis in (
        (cfg.freq_masks, cfg.max_freq_mask, n_mels, 1),
        (cfg.time_masks, cfg.max_time_mask, n_frames, 2),
    ):
        for _ in range(count):
            width = (uniform(b) * (max_width + 1)).long()
            start = (uniform(b) * (size - width + 1).float()).long()
            pos = torch.arange(size, device=dev)[None, :]
            mask = (pos >= start[:, None]) & (pos < (start + width)[:, None])  # (b, size)
            mask = mask[:, :, None] if axis == 1 else mask[:, None, :]
            x = torch.where(mask, fill, x)
    if cfg.mixup_alpha > 0:
        # The Beta draw takes no generator: it uses torch's global one, which a checkpoint saves too.
        lam = torch.distributions.Beta(cfg.mixup_alpha, cfg.mixup_alpha).sample((b,)).to(dev)
        lam = torch.maximum(lam, 1 - lam)  # the first example stays dominant
        perm = torch.randperm(b, generator=gen).to(dev)
        x = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[perm]
        return x, (perm, lam)
    return x, None
