"""Damaged, extreme and hour-long files at the runtime level: typed errors, bounded memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.audio import (
    dominant_hz,
    ffmpeg_tone,
    tone,
    write_audio,
    write_damaged_mp3,
    write_long_tone,
    write_tone,
)
from helpers.markers import needs_ffmpeg, needs_proc
from helpers.processes import descendants

from genre_model import (
    AudioDecodeError,
    Classifier,
    DecoderPool,
    FrontendConfig,
    classify_files,
    decode_windows,
    probe,
)

FE = FrontendConfig()
HOUR_S = 3600


def _peak_rss_mb_of_features(path: Path) -> tuple[float, float]:
    """(baseline, peak) resident memory in MB of a fresh process computing one track's windows."""
    code = (
        "import resource, sys\n"
        "from genre_model import FrontendConfig, track_features\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "w = track_features(sys.argv[1], FrontendConfig(), 8)\n"
        "assert w.shape == (8, 64, 92)\n"
        "print(base / 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    base, peak = map(float, out.stdout.split())
    return base, peak


@pytest.mark.slow
def test_hour_long_flac_is_classified_without_decoding_it_whole(tmp_path):
    path = write_long_tone(tmp_path / "hour.flac", 220.0, HOUR_S, sr=44100)
    base, peak = _peak_rss_mb_of_features(path)
    # Whole at 44.1 kHz float32 it would be 635 MB; eight 3 s windows are well under 1 MB.
    assert peak - base < 60, (base, peak)


@pytest.mark.slow
@needs_ffmpeg
def test_hour_long_file_through_ffmpeg_streams_in_bounded_memory(tmp_path):
    # Matroska/PCM: libsndfile cannot open it, ffmpeg streams it.
    path = ffmpeg_tone(tmp_path / "hour.mka", 220, HOUR_S, 16000, "-c:a", "pcm_s16le")
    base, peak = _peak_rss_mb_of_features(path)
    assert peak - base < 60, (base, peak)  # whole: 230 MB at 16 kHz float32


def test_truncated_files_are_reported_not_padded_with_silence(tmp_path):
    for ext in (".mp3", ".flac"):
        whole = write_tone(tmp_path / f"whole{ext}", 300.0, seconds=12.0)
        cut = tmp_path / f"cut{ext}"
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
        with pytest.raises(AudioDecodeError, match="truncated|damaged") as info:
            decode_windows(cut, FE, 8)
        assert info.value.path == str(cut)


DAMAGED_MP3 = "truncated or damaged: libsndfile could not decode the MP3 data"


@needs_ffmpeg
def test_a_damaged_mp3_fails_in_words_and_its_codec_prints_nothing(tmp_path, capfd):
    path = write_damaged_mp3(tmp_path / "damaged.mp3")
    with pytest.raises(AudioDecodeError) as info:
        decode_windows(path, FE, None)  # every window: through the damage
    assert info.value.reason == DAMAGED_MP3
    # libsndfile's own words and libmpg123's, for a debug log.
    assert info.value.detail.startswith("libsndfile: Unspecified internal error.; codec: ")
    assert "resync" in info.value.detail
    assert capfd.readouterr().err == ""  # libmpg123 writes to file descriptor 2 itself
    os.write(2, b"still here\n")  # and descriptor 2 is the process's own again
    assert capfd.readouterr().err == "still here\n"


@needs_ffmpeg
def test_decoder_processes_keep_codec_messages_off_stderr_too(tmp_path):
    path = write_damaged_mp3(tmp_path / "damaged.mp3")
    code = (
        "import sys\n"
        "from genre_model import DecoderPool, FrontendConfig, track_features\n"
        "with DecoderPool(2) as pool:\n"
        "    for _, _, error in pool.imap(track_features, [(0, sys.argv[1])], FrontendConfig(), None):\n"
        "        print(error.reason)\n"
        "        print(error.detail)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    reason, detail = proc.stdout.splitlines()
    assert reason == DAMAGED_MP3
    assert detail.startswith("libsndfile: Unspecified internal error.; codec: ")  # it crossed the process boundary
    assert proc.stderr == ""


@pytest.mark.parametrize("ext", [".mp3", ".flac", pytest.param(".m4a", marks=needs_ffmpeg)])
def test_long_track_cut_short_fails_whatever_its_length(tmp_path, ext):
    # A 255-s track keeps its header's length when cut to 40 %: the windows past the cut would
    # be silence. A per-file tolerance of 2 % (5 s, more than a window) once let it through.
    whole = tmp_path / f"whole{ext}"
    if ext == ".m4a":  # index at the front (faststart), so the cut file still declares its length
        ffmpeg_tone(whole, 300, 255, 16000, "-c:a", "aac", "-b:a", "32k", "-movflags", "+faststart")
    else:
        write_tone(whole, 300.0, seconds=255.0, sr=16000)
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.4)])
    assert probe(cut).duration > 250  # the header still declares the whole length
    with pytest.raises(AudioDecodeError, match="truncated or damaged"):
        decode_windows(cut, FE, 8)
    assert decode_windows(whole, FE, 8).shape == (8, FE.window_samples)


def test_eight_channel_96k_and_8k_mono_files_decode(tmp_path):
    wide = write_audio(tmp_path / "wide.wav", tone(500.0, 4.0, sr=96000, channels=8), 96000)
    narrow = write_tone(tmp_path / "narrow.flac", 500.0, seconds=4.0, sr=8000)
    for path in (wide, narrow):
        windows = decode_windows(path, FE, 8)
        assert windows.shape == (1, FE.window_samples) and np.isfinite(windows).all()
        # The tone itself, at its level, after the down-mix and resampling to the model's rate.
        assert abs(dominant_hz(windows[0], FE.sample_rate) - 500.0) < 10, path
        assert 0.25 < np.abs(windows[0]).max() < 0.35, path


@pytest.mark.slow
@needs_proc
def test_a_decoder_process_killed_mid_run_costs_no_file(tmp_path, tiny_model):
    paths = [write_tone(tmp_path / f"t{i:02d}.flac", 200.0 if i % 2 else 5000.0, seconds=30.0) for i in range(24)]
    clf = Classifier(tiny_model, device="cpu")
    killed = threading.Event()

    def kill_a_worker() -> None:
        # Wait until the pool's workers exist, then kill the newest descendant (a decoder; the
        # forkserver is the oldest) the way an out-of-memory killer or a decoder segfault would.
        for _ in range(200):
            procs = descendants(os.getpid())
            if len(procs) >= 3:
                os.kill(max(procs), signal.SIGKILL)
                killed.set()
                return
            time.sleep(0.02)

    threading.Thread(target=kill_a_worker, daemon=True).start()
    starts: list[int] = []
    with DecoderPool(2, on_start=starts.append) as pool:
        outcomes = list(classify_files(clf, paths, max_windows=None, pool=pool))
    assert killed.is_set()
    assert starts == [2, 2]  # the crash was seen and the processes replaced
    assert sorted(o.index for o in outcomes) == list(range(len(paths)))
    # The files in flight when the worker died are decoded again, one at a time: none is lost.
    assert all(o.error is None for o in outcomes), [o.error for o in outcomes if o.error]


@needs_proc
def test_one_pool_serves_many_calls_with_the_same_processes(tmp_path, tiny_model):
    # As in one `beet import`: many tasks, one set of decoder processes, closed at the end.
    clf = Classifier(tiny_model, device="cpu")
    starts: list[int] = []
    with DecoderPool(2, on_start=starts.append) as pool:
        seen = []
        for task in range(3):
            paths = [write_tone(tmp_path / f"{task}-{i}.flac", 200.0, seconds=4.0) for i in range(3)]
            assert all(o.prediction.top == "Low" for o in classify_files(clf, paths, pool=pool))
            seen.append(set(descendants(os.getpid())))
    assert starts == [2]
    assert seen[0] == seen[1] == seen[2]
    # Closing ends the two decoders (the forkserver that started them lives on, shared).
    assert len(seen[0] - set(descendants(os.getpid()))) == 2
