"""Training windows cut from cached spectrograms, and validation windows decoded as inference decodes them.

Training draws random window offsets from a class- and source-balanced choice of tracks, out
of each track's cached spectrogram (its central `training.features.cache.MAX_SECONDS`). Validation
analyses what the plugin would: the windows `genre_model.track_features` decodes from the
whole file (`genre_model.window_starts`), cached per file content.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from genre_model import FrontendConfig
from training.data.tracks import Track
from training.features.cache import FeatureCache, cached_window_outputs, file_digest


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
        # A teacher's probabilities per track, (n_tracks, n_labels) in `labels` order, for
        # distillation (`training.engine.distill`); None without a teacher.
        self.teacher_probs: np.ndarray | None = None
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

    def parity_windows(self, n: int = 8) -> np.ndarray:
        """One window from each of the first `n` tracks, at fixed offsets: real input for an export's
        parity check, (n, n_mels, n_frames) float32."""
        return self.random_crops(np.arange(min(n, len(self))), np.random.default_rng(0))


@dataclasses.dataclass
class InferenceWindows:
    """Labelled tracks and the windows the plugin would analyse in each, decoded from the files.

    windows: one (n_windows_i, n_mels, n_frames) float32 array per track; labels: the model's
    label order.
    """

    tracks: list[Track]
    labels: list[str]
    windows: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def targets(self) -> np.ndarray:
        """Label index of each track, (n_tracks,) int64."""
        return np.array([self.labels.index(t.label) for t in self.tracks], dtype=np.int64)

    def subset(self, indices: Sequence[int]) -> InferenceWindows:
        return InferenceWindows([self.tracks[i] for i in indices], self.labels, [self.windows[i] for i in indices])


def inference_windows(
    tracks: Sequence[Track],
    labels: Sequence[str],
    cache: FeatureCache,
    digests: dict[str, str],
    max_windows: int | None,
    workers: int = 1,
    log: Callable[[str], None] = print,
) -> tuple[InferenceWindows, dict[str, str]]:
    """The windows the plugin analyses in each track with `max_windows` (None: every whole window),
    cached beside `cache`'s spectrograms; returns the decodable tracks' and {path: failure reason}."""
    found, failures = cached_window_outputs(
        [t.path for t in tracks], cache.dir / f"windows-{max_windows or 'all'}", cache.frontend, max_windows,
        _as_decoded, workers, digests, "validation windows", log,
    )  # fmt: skip
    for path, reason in failures.items():
        log(f"skipped {path}: {reason}")
    kept = [(t, w) for t, w in zip(tracks, found, strict=True) if w is not None]
    return InferenceWindows([t for t, _ in kept], list(labels), [w for _, w in kept]), failures


def _as_decoded(windows: np.ndarray) -> np.ndarray:
    return windows


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
