"""`Classifier`: an exported genre model run with onnxruntime, and the vote over windows."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from genre_model.errors import ModelError
from genre_model.model_file import METADATA_KEY, ModelInfo

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
VOTES: tuple[str, ...] = ("mean", "majority")


# Models shipped inside the package, by the name a user gives in `genreclass.model`:
# "default" (accurate) and "fast" (a small CNN, several times faster, less accurate).
BUNDLED_MODELS: tuple[str, ...] = ("default", "fast")


def bundled_model_path(name: str = "default") -> Path:
    """Path of a model shipped inside the package (`BUNDLED_MODELS`)."""
    if name not in BUNDLED_MODELS:
        raise ModelError(f"no bundled model {name!r}; there are {', '.join(BUNDLED_MODELS)}")
    return Path(str(resources.files("genre_model") / "bundled" / f"genreclass-{name}.onnx"))


@dataclasses.dataclass(frozen=True)
class TrackPrediction:
    """The verdict on one track (or, pooled, on an album).

    genres: (label, score) pairs, most probable first, over every label; scores sum to 1.
    window_probs: per-window probabilities, shape (n_windows, n_labels), in the model's label order.
    """

    genres: tuple[tuple[str, float], ...]
    window_probs: np.ndarray

    @property
    def n_windows(self) -> int:
        return int(self.window_probs.shape[0])

    @property
    def top(self) -> str:
        return self.genres[0][0]

    @property
    def confidence(self) -> float:
        """Score of the top genre under the vote used."""
        return self.genres[0][1]

    def selected(self, count: int, min_confidence: float, rename: Mapping[str, str] | None = None) -> list[str]:
        """The top `count` genres whose score is at least `min_confidence`.

        rename: model label -> the genre to give instead; a label renamed to "" is never given,
        and the next most probable one takes its place. Two labels renamed alike count once.
        """
        chosen: list[str] = []
        for label, p in self.genres:
            if len(chosen) == count or p < min_confidence:
                break
            name = label if rename is None else rename.get(label, label)
            if name and name not in chosen:
                chosen.append(name)
        return chosen


def vote(window_probs: np.ndarray, labels: Sequence[str], method: str = "mean") -> TrackPrediction:
    """Combine per-window probabilities (n_windows, n_labels) into one `TrackPrediction`.

    mean: average the probabilities. majority: each window votes for its top label; scores
    are vote fractions, ties broken by mean probability.
    """
    if window_probs.ndim != 2 or window_probs.shape[0] == 0 or window_probs.shape[1] != len(labels):
        raise ValueError(f"window_probs must be (n_windows>0, {len(labels)}), got {window_probs.shape}")
    mean = window_probs.mean(axis=0)
    if method == "mean":
        scores = mean
        order = np.argsort(-scores, kind="stable")
    elif method == "majority":
        scores = np.bincount(window_probs.argmax(axis=1), minlength=len(labels)) / window_probs.shape[0]
        order = np.lexsort((-mean, -scores))  # equal vote counts ordered by mean probability
    else:
        raise ValueError(f"vote must be one of {VOTES}, got {method!r}")
    genres = tuple((labels[i], float(scores[i])) for i in order)
    return TrackPrediction(genres, window_probs)


def pool_tracks(tracks: Sequence[TrackPrediction]) -> TrackPrediction:
    """One verdict for several tracks (an album): the mean over tracks of their scores.

    Each track counts once whatever its number of windows, and each keeps its own vote over its
    windows (mean or majority). window_probs of the result: every track's windows, stacked.
    """
    if not tracks:
        raise ValueError("pool_tracks needs at least one track")
    labels = [label for label, _ in tracks[0].genres]
    scores = np.zeros(len(labels))
    for track in tracks:
        by_label = dict(track.genres)
        if by_label.keys() != set(labels):
            raise ValueError("pool_tracks: the tracks were classified with different labels")
        scores += [by_label[label] for label in labels]
    scores /= len(tracks)
    order = np.argsort(-scores, kind="stable")  # ties keep the first track's order
    genres = tuple((labels[i], float(scores[i])) for i in order)
    return TrackPrediction(genres, np.concatenate([t.window_probs for t in tracks]))


def quiet_onnxruntime():
    """The onnxruntime module, imported (on first use) without its telemetry and with its log quiet.

    onnxruntime 1.31 records usage events in ~/.cache/Microsoft/DeveloperTools unless
    ``ORT_DISABLE_TELEMETRY`` is set before it loads: nothing of ours writes outside the
    user's library or reaches the network. Its log at 3 (errors only): onnxruntime-gpu on a
    machine without CUDA otherwise warns twice on stderr while it falls back to the CPU, which
    is the expected case, not an alarm.
    """
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    onnxruntime.disable_telemetry_events()
    onnxruntime.set_default_logger_severity(3)
    return onnxruntime


def _cuda_usable() -> bool:
    ort = quiet_onnxruntime()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    # The provider is listed by every onnxruntime-gpu build; a driver is what makes it usable.
    return any(os.path.exists(p) for p in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/dxg"))


class Classifier:
    """Runs a genreclass `.onnx` model on log-mel windows.

    The onnxruntime session is created on first use, so constructing a `Classifier` is free.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        device: str = "auto",
        vote: str = "mean",
        batch_size: int = 8,
    ) -> None:
        if device not in DEVICES:
            raise ModelError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        if vote not in VOTES:
            raise ModelError(f"vote must be one of {', '.join(VOTES)}, got {vote!r}")
        if batch_size < 1:
            raise ModelError(f"batch_size must be at least 1, got {batch_size}")
        self.model_path = Path(model_path) if model_path else bundled_model_path()
        self.device = device
        self.vote_method = vote
        self.batch_size = batch_size
        self._session = None
        self._info: ModelInfo | None = None

    @property
    def info(self) -> ModelInfo:
        """The model's metadata (loads the model on first access)."""
        self._load()
        assert self._info is not None
        return self._info

    @property
    def providers(self) -> list[str]:
        """onnxruntime execution providers in use, e.g. ['CPUExecutionProvider']."""
        self._load()
        return list(self._session.get_providers())

    def _load(self) -> None:
        if self._session is not None:
            return
        path = self.model_path
        if not path.exists():
            raise ModelError(f"model file not found: {path}")
        if not path.is_file():
            # Checked before opening: onnxruntime would wait forever on a FIFO with no writer.
            raise ModelError(f"model path is not a regular file: {path}")
        ort = quiet_onnxruntime()
        providers = ["CPUExecutionProvider"]
        if self.device == "cuda" or (self.device == "auto" and _cuda_usable()):
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if providers[0] == "CUDAExecutionProvider":
            # A CUDA library that fails to load is reported below as one clear ModelError
            # (device 'cuda') or a silent CPU fallback (device 'auto'), not as raw C++ log lines.
            ort.set_default_logger_severity(4)
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"{path}: not a loadable ONNX model ({str(exc).strip().splitlines()[0]})") from None
        finally:
            ort.set_default_logger_severity(3)
        if self.device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
            raise ModelError("device 'cuda' was asked for but onnxruntime cannot use CUDA on this machine")
        meta = session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise ModelError(f"{path}: no '{METADATA_KEY}' metadata; this is not a genreclass model")
        info = ModelInfo.from_json(meta[METADATA_KEY], str(path))
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelError(f"{path}: expected one input and one output")
        in_shape, out_shape = inputs[0].shape, outputs[0].shape
        expected_in = [info.frontend.n_mels, info.frontend.n_frames]
        if len(in_shape) != 3 or [d if isinstance(d, int) else None for d in in_shape[1:]] != expected_in:
            raise ModelError(f"{path}: input shape {in_shape} does not match the front end (batch, {expected_in})")
        if len(out_shape) != 2 or out_shape[1] != len(info.labels):
            raise ModelError(f"{path}: output shape {out_shape} does not match {len(info.labels)} labels")
        self._input_name = inputs[0].name
        self._info = info
        self._session = session

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the model's outputs, probabilities first (e.g. ``("probabilities", "embedding")``)."""
        self._load()
        return tuple(o.name for o in self._session.get_outputs())

    def window_probabilities(self, features: np.ndarray) -> np.ndarray:
        """Probabilities for log-mel windows (n, n_mels, n_frames) -> (n, n_labels), in batches."""
        self._load()
        return self.window_outputs(features, self._session.get_outputs()[0].name)

    def window_outputs(self, features: np.ndarray, name: str) -> np.ndarray:
        """The output `name` (one of `output_names`) for log-mel windows (n, n_mels, n_frames),
        in batches: (n, *that output's shape after the batch axis) float32, e.g. (n, 200) for an
        ``embedding``."""
        self._load()
        outputs = {o.name: o for o in self._session.get_outputs()}
        if name not in outputs:
            raise ModelError(f"{self.model_path}: no output named {name!r} (it has {', '.join(outputs)})")
        features = np.ascontiguousarray(features, dtype=np.float32)
        ort = quiet_onnxruntime()
        quiet = ort.RunOptions()
        quiet.log_severity_level = 4  # a failure is raised below as one ModelError, not also logged raw
        try:
            parts = [
                self._session.run([name], {self._input_name: features[i : i + self.batch_size]}, quiet)[0]
                for i in range(0, features.shape[0], self.batch_size)
            ]
        except Exception as exc:  # onnxruntime raises several private exception types
            # A graph that loads can still fail on real input (an index or a shape checked only
            # at run time): a broken model, so fatal, named, in one line.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.model_path}: the model failed while classifying ({first})") from None
        if parts:
            return np.concatenate(parts).astype(np.float32)
        width = [d if isinstance(d, int) else 0 for d in outputs[name].shape[1:]]
        return np.zeros((0, *width), np.float32)

    def predict(self, tracks: Iterable[np.ndarray]) -> list[TrackPrediction]:
        """Classify several tracks at once; their windows share batches.

        tracks: log-mel windows per track, each (n_windows_i, n_mels, n_frames).
        """
        tracks = list(tracks)
        if not tracks:
            return []
        probs = self.window_probabilities(np.concatenate(tracks))
        bounds = np.cumsum([0] + [t.shape[0] for t in tracks])
        return [
            vote(probs[a:b], self.info.labels, self.vote_method) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
