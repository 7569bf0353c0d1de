"""Training windows drawn from what the network reads, and validation windows placed as inference places them.

Training draws a class- and source-balanced choice of tracks and one window of each: a random
offset into the track's cached spectrogram (its central `training.features.cache.MAX_SECONDS`),
or a random one of its cached backbone rows. Validation analyses what the plugin would: the
windows `genre_model.track_features` decodes from the whole file (`genre_model.window_starts`).
`training.features.inputs` computes and caches both, per kind of input.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from genre_model import AudioDecodeError, FrontendConfig, track_features
from training.data.tracks import Track
from training.features.inputs import Inputs

# Tracks and windows per track whose log-mel windows check an export's parity.
PARITY_TRACKS, PARITY_WINDOWS_PER_TRACK = 8, 2


class TrackWindows:
    """What a network trains on, per labelled track, and random windows drawn from it.

    tracks: the tracks (all decodable); arrays: one per track, either its log-mel spectrogram
    (n_mels, T) from which windows are cut at random offsets, or (with `rows`) the network's
    input for each of its whole windows (n_windows, ...), e.g. cached backbone features, of which
    one row is drawn; labels: the model's label order; frontend: the front end the arrays come
    from. crop_frames: with `rows` of (n_windows, channels, frames), each batch keeps a random run
    of this many frames (0: all).
    """

    def __init__(
        self,
        tracks: Sequence[Track],
        arrays: Sequence[np.ndarray],
        labels: Sequence[str],
        frontend: FrontendConfig,
        rows: bool = False,
        crop_frames: int = 0,
    ) -> None:
        self.tracks = list(tracks)
        self.labels = list(labels)
        self.frontend = frontend
        self.arrays = list(arrays)  # memory-mapped where they come from a cache
        self.rows, self.crop_frames = rows, crop_frames
        self.masks = label_masks(self.tracks, self.labels)  # (n_tracks, n_labels) bool: the labels each may carry
        # A teacher's probabilities per track, (n_tracks, n_labels) in `labels` order, for
        # distillation (`training.engine.distill`); None without a teacher.
        self.teacher_probs: np.ndarray | None = None
        # label -> source -> track indices: sampling is uniform over labels, then over sources
        # within a label, so neither a big class nor a big dataset dominates what is learnt. A
        # track that may carry several labels sits in each of their strata and counts 1/|set|
        # towards each label's size.
        self._strata: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        self._sizes: dict[int, float] = defaultdict(float)
        for i, t in enumerate(self.tracks):
            members = np.flatnonzero(self.masks[i])
            for k in members:
                self._strata[int(k)][t.source].append(i)
                self._sizes[int(k)] += 1.0 / len(members)

    @property
    def targets(self) -> np.ndarray:
        """Label index of each track, (n_tracks,) int64; a track of several labels gets the first."""
        return self.masks.argmax(axis=1)

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
            sizes = np.array([self._sizes[lab] for lab in labels], dtype=np.float64)
            weights = sizes ** (1.0 - class_balance)
            drawn = rng.choice(labels, size=n, p=weights / weights.sum())
        out = np.empty(n, dtype=np.int64)
        for k, label in enumerate(drawn):
            sources = self._strata[int(label)]
            members = sources[list(sources)[rng.integers(len(sources))]]
            out[k] = members[rng.integers(len(members))]
        return out

    def random_crops(self, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One window of each track at a random place, float32: (len(indices), n_mels, n_frames)
        cut from a spectrogram, or (len(indices), ...) a random row of each track's `arrays`."""
        if self.rows:
            out = np.stack([self.arrays[i][rng.integers(len(self.arrays[i]))] for i in indices]).astype(np.float32)
            if out.ndim == 3 and 0 < self.crop_frames < out.shape[2]:
                start = int(rng.integers(0, out.shape[2] - self.crop_frames + 1))
                out = np.ascontiguousarray(out[:, :, start : start + self.crop_frames])
            return out
        n_frames = self.frontend.n_frames
        out = np.empty((len(indices), self.frontend.n_mels, n_frames), dtype=np.float32)
        for k, i in enumerate(indices):
            mel = self.arrays[i]
            offset = rng.integers(0, mel.shape[1] - n_frames + 1)
            out[k] = mel[:, offset : offset + n_frames]
        return out


@dataclasses.dataclass
class InferenceWindows:
    """Labelled tracks and the windows the plugin would analyse in each, decoded from the files.

    windows: per track, the network's input for each of those windows, (n_windows_i, ...): log-mel
    (n_windows_i, n_mels, n_frames) float32, or the frozen backbone's outputs on them; labels: the
    model's label order.
    """

    tracks: list[Track]
    labels: list[str]
    windows: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def masks(self) -> np.ndarray:
        """The labels each track may carry, (n_tracks, n_labels) bool."""
        return label_masks(self.tracks, self.labels)

    @property
    def targets(self) -> np.ndarray:
        """Label index of each track, (n_tracks,) int64; a track of several labels gets the first."""
        return self.masks.argmax(axis=1)

    def subset(self, indices: Sequence[int]) -> InferenceWindows:
        return InferenceWindows([self.tracks[i] for i in indices], self.labels, [self.windows[i] for i in indices])


def label_masks(tracks: Sequence[Track], labels: Sequence[str]) -> np.ndarray:
    """(n_tracks, n_labels) bool: True where a track may carry the label (`Track.genres`). Raises
    `ValueError` naming a track none of whose genres is in `labels`."""
    index = {label: k for k, label in enumerate(labels)}
    masks = np.zeros((len(tracks), len(labels)), dtype=bool)
    for i, t in enumerate(tracks):
        known = [index[g] for g in t.genres if g in index]
        if not known:
            raise ValueError(f"{t.path}: none of its genres ({t.label}) is a label ({', '.join(labels)})")
        masks[i, known] = True
    return masks


def parity_windows(tracks: Sequence[Track], frontend: FrontendConfig) -> np.ndarray | None:
    """Real log-mel windows of the first `PARITY_TRACKS` decodable tracks, `PARITY_WINDOWS_PER_TRACK`
    each, decoded as the plugin decodes them: what an export's parity check compares the written file
    with torch (or numpy) on, (n, n_mels, n_frames) float32; None when no track decodes."""
    found = []
    for t in tracks:
        try:
            found.append(track_features(t.path, frontend, PARITY_WINDOWS_PER_TRACK))
        except AudioDecodeError:
            continue
        if len(found) == PARITY_TRACKS:
            break
    return np.concatenate(found) if found else None


def inference_windows(
    tracks: Sequence[Track],
    labels: Sequence[str],
    inputs: Inputs,
    max_windows: int | None,
    log: Callable[[str], None] = print,
) -> tuple[InferenceWindows, dict[str, str]]:
    """The network's inputs for the windows the plugin analyses in each track with `max_windows`
    (None: every whole window); returns the decodable tracks' and {path: failure reason}."""
    found, failures = inputs.inference([t.path for t in tracks], max_windows, log)
    for path, reason in failures.items():
        log(f"skipped {path}: {reason}")
    kept = [(t, w) for t, w in zip(tracks, found, strict=True) if w is not None]
    return InferenceWindows([t for t, _ in kept], list(labels), [w for _, w in kept]), failures


def prepare(
    tracks: Sequence[Track], labels: Sequence[str], inputs: Inputs, log: Callable[[str], None] = print
) -> tuple[TrackWindows, dict[str, str]]:
    """What the network trains on for each of `tracks` (computed once, then read from the cache),
    the decodable ones wrapped in `TrackWindows`; returns (windows, {path: failure reason})."""
    found, failures = inputs.training([t.path for t in tracks], log)
    for path, reason in failures.items():
        log(f"skipped {path}: {reason}")
    kept = [(t, a) for t, a in zip(tracks, found, strict=True) if a is not None]
    arrays = [a for _, a in kept]
    return TrackWindows(
        [t for t, _ in kept], arrays, labels, inputs.frontend, inputs.rows, inputs.crop_frames
    ), failures
