"""Training and evaluation windows cut from cached spectrograms.

Training draws random window offsets from a class- and source-balanced choice of tracks;
evaluation cuts the same windows inference would (`genre_model.window_starts`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from genre_model import FrontendConfig, window_starts
from training.datasets import Track
from training.features import FeatureCache, file_digest


class TrackWindows:
    """Cached spectrograms of labelled tracks, and windows cut from them.

    tracks: the tracks (all decodable and cached); labels: the model's label order.
    """

    def __init__(
        self, tracks: Sequence[Track], digests: Sequence[str], cache: FeatureCache, labels: Sequence[str]
    ) -> None:
        self.tracks = list(tracks)
        self.labels = list(labels)
        self.frontend: FrontendConfig = cache.frontend
        self.mels = [cache.load(d) for d in digests]  # memory-mapped (n_mels, T) float16
        self.targets = np.array([self.labels.index(t.label) for t in self.tracks], dtype=np.int64)
        # label -> source -> track indices: sampling is uniform over labels, then over sources
        # within a label, so neither a big class nor a big dataset dominates what is learnt.
        self._strata: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for i, t in enumerate(self.tracks):
            self._strata[int(self.targets[i])][t.source].append(i)

    def __len__(self) -> int:
        return len(self.tracks)

    def balanced_indices(self, n: int, rng: np.random.Generator, class_balance: float = 1.0) -> np.ndarray:
        """`n` track indices: a label, then a source within it uniformly, then a track uniformly.

        class_balance: labels are drawn with probability proportional to
        ``n_tracks(label) ** (1 - class_balance)``: 1 = every label equally often, 0 = as often
        as the data has them, 0.5 = in between (square root of the counts).
        """
        labels = list(self._strata)
        if class_balance == 1.0:
            drawn = rng.choice(labels, size=n)
        else:
            sizes = np.array([sum(len(m) for m in self._strata[lab].values()) for lab in labels], dtype=np.float64)
            weights = sizes ** (1.0 - class_balance)
            drawn = rng.choice(labels, size=n, p=weights / weights.sum())
        out = np.empty(n, dtype=np.int64)
        for k, label in enumerate(drawn):
            sources = self._strata[int(label)]
            members = sources[list(sources)[rng.integers(len(sources))]]
            out[k] = members[rng.integers(len(members))]
        return out

    def random_crops(self, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One window at a random offset from each track: (len(indices), n_mels, n_frames) float32."""
        n_frames = self.frontend.n_frames
        out = np.empty((len(indices), self.frontend.n_mels, n_frames), dtype=np.float32)
        for k, i in enumerate(indices):
            mel = self.mels[i]
            offset = rng.integers(0, mel.shape[1] - n_frames + 1)
            out[k] = mel[:, offset : offset + n_frames]
        return out

    def eval_windows(self, i: int, max_windows: int | None = 8) -> np.ndarray:
        """The windows inference would analyse, (n_windows, n_mels, n_frames) float32."""
        fe = self.frontend
        mel = self.mels[i]
        n_samples = (mel.shape[1] - 1) * fe.hop_length + fe.n_fft
        starts = window_starts(n_samples / fe.sample_rate, fe.window_seconds, max_windows)
        offsets = [min(int(round(s * fe.sample_rate / fe.hop_length)), mel.shape[1] - fe.n_frames) for s in starts]
        return np.stack([mel[:, o : o + fe.n_frames] for o in offsets]).astype(np.float32)


def prepare(
    tracks: Sequence[Track],
    labels: Sequence[str],
    cache: FeatureCache,
    digests: dict[str, str],
    workers: int = 1,
    log=print,
) -> tuple[TrackWindows, dict[str, str]]:
    """Cache the features of `tracks` and wrap the decodable ones in `TrackWindows`.

    digests: {path: content hash}, filled in as needed. returns (windows, {path: failure reason}).
    """
    for t in tracks:
        if t.path not in digests:
            digests[t.path] = file_digest(t.path)

    def progress(done: int, todo: int) -> None:
        if done == todo or done % 50 == 0:
            log(f"features: {done}/{todo} computed")

    failures = cache.ensure([t.path for t in tracks], [digests[t.path] for t in tracks], workers, progress)
    for path, reason in failures.items():
        log(f"skipped {path}: {reason}")
    good = [t for t in tracks if t.path not in failures]
    return TrackWindows(good, [digests[t.path] for t in good], cache, labels), failures
