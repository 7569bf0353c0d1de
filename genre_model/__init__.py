"""genre_model: the inference runtime of beets-genreclass (numpy + onnxruntime; no torch, no beets).

Importing this package does no work; the model is loaded on first use.
"""

from genre_model.audio import AudioInfo, probe, read_excerpts
from genre_model.classifier import Classifier, TrackPrediction, bundled_model_path, pool_tracks, vote
from genre_model.decoder_pool import DecoderPool, resolve_workers
from genre_model.errors import AudioDecodeError, GenreModelError, ModelError
from genre_model.frontend import FrontendConfig, log_mel, mel_filterbank
from genre_model.model_file import ModelInfo
from genre_model.pipeline import Outcome, classify_files, in_input_order
from genre_model.windows import decode_windows, track_features, window_starts

__all__ = [
    "AudioDecodeError",
    "AudioInfo",
    "Classifier",
    "DecoderPool",
    "FrontendConfig",
    "GenreModelError",
    "ModelError",
    "ModelInfo",
    "Outcome",
    "TrackPrediction",
    "bundled_model_path",
    "classify_files",
    "in_input_order",
    "decode_windows",
    "log_mel",
    "mel_filterbank",
    "pool_tracks",
    "probe",
    "read_excerpts",
    "resolve_workers",
    "track_features",
    "vote",
    "window_starts",
]
