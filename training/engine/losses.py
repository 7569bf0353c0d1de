"""The training loss: the partial-label likelihood of a track's set of labels, smoothed, mixed, distilled.

A clip may carry several labels (`Track.genres`: AllMusic files "Pop/Rock" per artist, so the clip
is Pop, Rock or Metal, which is not known). Its loss is ``-log sum_{y in S} p(y)``: the model may put
the clip's probability anywhere in its set and is only pushed away from labels outside it. For a
set of one label this is cross-entropy, so single-label data trains exactly as before. The
alternatives: a uniform target over the set (cross-entropy with 1/|S| on each member) forces the
model to hedge between Pop and Metal on every Pop/Rock clip, teaching it that they sound alike;
independent sigmoids (multi-label) would read "Pop/Rock" as "Pop and Rock and Metal at once", which
AllMusic does not say, and lose the softmax the runtime votes with.

With label smoothing e (as torch's `cross_entropy`): ``(1 - e) * set_nll + e * mean_k(-log p_k)``.
Mixup mixes two examples' losses with the example's weight; distillation adds a teacher's soft
target with weight w: ``(1 - w) * set loss + w * soft cross-entropy``, both smoothed alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def set_nll(log_probs: torch.Tensor, masks: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per example: -log of the probability in its set, smoothed. log_probs (B, L); masks (B, L) bool -> (B,)."""
    in_set = torch.logsumexp(log_probs.masked_fill(~masks, float("-inf")), dim=1)
    return -(1 - label_smoothing) * in_set - label_smoothing * log_probs.mean(dim=1)


def soft_nll(log_probs: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per example: cross-entropy against probability targets (B, L), smoothed -> (B,)."""
    return -(1 - label_smoothing) * (targets * log_probs).sum(dim=1) - label_smoothing * log_probs.mean(dim=1)


def training_loss(
    logits: torch.Tensor,
    masks: torch.Tensor,
    label_smoothing: float = 0.0,
    teacher: torch.Tensor | None = None,
    distill_weight: float = 0.0,
    mix: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The batch's mean loss.

    logits (B, L); masks (B, L) bool, the labels each example may carry; teacher (B, L) a teacher's
    probabilities (with `distill_weight` > 0); mix: mixup's (perm (B,), lam (B,)): example i is
    lam_i x its own input + (1 - lam_i) x input perm_i, and its loss mixes the two targets' alike.
    """
    log_probs = F.log_softmax(logits, dim=1)

    def loss_for(rows: torch.Tensor | slice) -> torch.Tensor:
        loss = set_nll(log_probs, masks[rows], label_smoothing)
        if teacher is not None and distill_weight > 0:
            loss = (1 - distill_weight) * loss + distill_weight * soft_nll(log_probs, teacher[rows], label_smoothing)
        return loss

    if mix is None:
        return loss_for(slice(None)).mean()
    perm, lam = mix
    return (lam * loss_for(slice(None)) + (1 - lam) * loss_for(perm)).mean()
