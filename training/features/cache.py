"""Feature cache: each track's log-mel spectrogram computed once, stored as float16 `.npy`.

Files live in ``CACHE/<frontend hash>/<content hash>.npy``: the key is the audio file's
content and the front-end parameters, so a moved or renamed file is not recomputed, and a
changed front end never reads stale features. Each file is written under a temporary name
and renamed, so an interrupted run resumes where it stopped. Training reads the files
memory-mapped; the parent process never holds more than one track, whatever the dataset size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from genre_model import AudioDecodeError, FrontendConfig, decode_windows, log_mel, probe, read_excerpts, track_features
from genre_model.decoder_pool import DecoderPool
from training.atomic import replaced_atomically

# Longer tracks are cached as their central excerpt of this many seconds: plenty of windows
# for training, and a bounded cost per track.
MAX_SECONDS = 120.0


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-1 of the file's bytes (hex); the cache key and the split leak check use it."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def frontend_digest(frontend: FrontendConfig) -> str:
    return hashlib.sha1(json.dumps(frontend.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def compute_track(path: str, frontend: FrontendConfig, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Log-mel of a whole track (or its central `max_seconds`), (n_mels, n_frames) float32.

    A track shorter than one window follows the plugin's rule (`genre_model.windows`): from
    `MIN_TRACK_SECONDS` on it is zero-padded at the end to one window, so that what a model learns
    from is what it is later shown (the GTZAN fragments are 2-3 s). Raises `AudioDecodeError` for
    unreadable, too short or silent files.
    """
    info = probe(path)
    if info.duration < frontend.window_seconds:
        return log_mel(decode_windows(path, frontend, 1, info)[0], frontend)
    length = min(info.duration, max_seconds)
    start = (info.duration - length) / 2
    audio = read_excerpts(path, info, [start], length, frontend.sample_rate)[0]
    return log_mel(audio, frontend)


class Digests(dict[str, str]):
    """{path: SHA-1 of the file's bytes}, each file read once: the caches' keys and the split's leak
    check (`training.data.splits.check_disjoint`) share one map."""

    def of(self, path: str) -> str:
        """The content hash of `path` (raises `OSError` for an unreadable file)."""
        if path not in self:
            self[path] = file_digest(path)
        return self[path]

    def unreadable(self, paths: Sequence[str]) -> dict[str, str]:
        """Hash every readable file of `paths`; {path: reason} for the others."""
        failures = {}
        for path in paths:
            try:
                self.of(path)
            except OSError as exc:
                failures[path] = f"cannot read: {exc.strerror or exc}"
        return failures


def save_npy(array: np.ndarray, target: Path) -> None:
    """`np.save` whole or not at all: an interrupted run leaves no partial file."""
    with replaced_atomically(target) as tmp:
        np.save(tmp, array)


def cached_window_outputs(
    paths: Sequence[str],
    folder: Path,
    frontend: FrontendConfig,
    max_windows: int | None,
    compute: Callable[[np.ndarray], np.ndarray],
    workers: int = 2,
    digests: Digests | None = None,
    what: str = "features",
    log: Callable[[str], None] = print,
    dtype: type[np.floating] = np.float32,
) -> tuple[list[np.ndarray | None], dict[str, str]]:
    """A network's outputs on each file's windows, computed once and cached per file content.

    Windows are placed as the plugin places them (`genre_model.track_features` with
    `max_windows`; None: every whole window); ``compute(windows)`` maps (n, n_mels, n_frames) to
    (n, ...). Files live in ``folder/<content hash>.npy`` (`dtype`) and are never recomputed.
    digests: {path: content hash}, filled in as needed. Returns one (n_windows_i, D) array per
    path (None where the file could not be read or decoded; shape (n_windows_i, ...)) and {path: reason} for those.
    """
    folder.mkdir(parents=True, exist_ok=True)
    digests = Digests() if digests is None else digests
    failures = digests.unreadable(paths)
    target = {p: folder / f"{digests[p]}.npy" for p in paths if p not in failures}
    todo = [(i, p) for i, p in enumerate(paths) if p in target and not target[p].exists()]
    if todo:
        log(f"{what}: {len(todo)} of {len(paths)} files to compute")
    with DecoderPool(workers) as pool:
        for done, (_, path, windows) in enumerate(pool.imap(track_features, todo, frontend, max_windows), 1):
            if isinstance(windows, AudioDecodeError):
                failures[path] = windows.reason
            else:
                save_npy(compute(windows).astype(dtype), target[path])
            if done % 50 == 0 or done == len(todo):
                log(f"{what}: {done}/{len(todo)} files")
    # Memory-mapped: front-end outputs take ~210 kB a window, far more than memory for a large pool.
    return [None if p in failures else np.load(target[p], mmap_mode="r") for p in paths], failures


class FeatureCache:
    """Log-mel spectrograms of tracks, keyed by content and front end, memory-mapped on read."""

    def __init__(self, root: str | os.PathLike[str], frontend: FrontendConfig) -> None:
        self.frontend = frontend
        self.dir = Path(root) / frontend_digest(frontend)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "frontend.json").write_text(json.dumps(frontend.to_dict(), indent=1))

    def path_for(self, digest: str) -> Path:
        return self.dir / f"{digest}.npy"

    def ensure(
        self,
        paths: Sequence[str],
        digests: Sequence[str],
        workers: int = 1,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, str]:
        """Compute the missing features of `paths` (whose content hashes are `digests`).

        Returns {path: reason} for files that could not be decoded; the rest are cached.
        """
        todo = [(i, p) for i, (p, d) in enumerate(zip(paths, digests, strict=True)) if not self.path_for(d).exists()]
        failures: dict[str, str] = {}
        # The same crash-tolerant pool as inference: a decoder that dies costs one file, not the run.
        with DecoderPool(workers) as pool:
            for done, (i, path, result) in enumerate(pool.imap(compute_track, todo, self.frontend), 1):
                if isinstance(result, AudioDecodeError):
                    failures[path] = result.reason
                else:
                    save_npy(result.astype(np.float16), self.path_for(digests[i]))
                if progress:
                    progress(done, len(todo))
        return failures

    def load(self, digest: str) -> np.ndarray:
        """The cached spectrogram, (n_mels, n_frames) float16, memory-mapped read-only."""
        return np.load(self.path_for(digest), mmap_mode="r")
