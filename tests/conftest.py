from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from helpers.audio import keep_encoded_files, write_tone
from helpers.models import build_tiny_model

# Tests that load onnxruntime themselves (and the beet processes they start) keep its telemetry off
# too: nothing is written outside the tests' folders.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def pytest_configure(config):
    """Hypothesis's storage (its example database, the constants it gathers from the sources) in
    a temporary folder removed at the end, not .hypothesis/ in the checkout. Set before the test
    modules are collected: @given reads it as a module is imported."""
    from hypothesis import configuration

    folder = tempfile.mkdtemp(prefix="genreclass-tests-hypothesis-")
    configuration.set_hypothesis_home_dir(folder)
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


@pytest.fixture(scope="session", autouse=True)
def beets_config_folder(tmp_path_factory):
    """beets' configuration folder for every test: a temporary one, never ~/.config/beets (a test
    that reads beets' global config without its own BEETSDIR would otherwise create it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BEETSDIR", str(tmp_path_factory.mktemp("beetsdir")))
        yield


@pytest.fixture(scope="session", autouse=True)
def matplotlib_folder(tmp_path_factory):
    """matplotlib's config and font cache (training's plots), for this process and the `beet`
    processes it starts: a temporary folder, not ~/.config/matplotlib and ~/.cache/matplotlib."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MPLCONFIGDIR", str(tmp_path_factory.mktemp("matplotlib")))
        yield


@pytest.fixture(scope="session", autouse=True)
def encoded_audio(tmp_path_factory):
    """Each distinct sound is encoded once a session; tests get copies (`keep_encoded_files`)."""
    keep_encoded_files(tmp_path_factory.mktemp("encoded-audio"))
    yield
    keep_encoded_files(None)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture
def tones(tmp_path) -> dict[str, Path]:
    """One low (200 Hz) and one high (5 kHz) tone in every format libsndfile writes."""
    out = {}
    for ext in (".wav", ".flac", ".ogg", ".opus", ".mp3"):
        out[f"low{ext}"] = write_tone(tmp_path / f"low{ext}", 200.0, seconds=6.0, channels=2)
        out[f"high{ext}"] = write_tone(tmp_path / f"high{ext}", 5000.0, seconds=6.0)
    return out
