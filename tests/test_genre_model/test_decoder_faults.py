"""Decoder processes that die or hang mid-run, and the other ways a run could stop or lie:
each fault costs at most its own file, with its reason, and the run goes on."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.audio import add_cover, write_headerless_mp3, write_tone
from helpers.markers import needs_ffmpeg, needs_proc
from helpers.models import TINY_FRONTEND, build_failing_model
from helpers.processes import decoder_pids, descendants, exists, features_or_stop, state_of, wait_gone

from genre_model import (
    AudioDecodeError,
    Classifier,
    DecoderPool,
    FrontendConfig,
    ModelError,
    classify_files,
    decode_windows,
    decoder_pool,
    probe,
    track_features,
)

FE = FrontendConfig()


def _tones(tmp_path: Path, n: int, seconds: float = 4.0, stem: str = "t") -> list[tuple[int, str]]:
    return [(i, str(write_tone(tmp_path / f"{stem}{i:02d}.flac", 200.0, seconds=seconds))) for i in range(n)]


@needs_proc
def test_a_worker_killed_between_jobs_is_survived_at_the_next_submit(tmp_path):
    # The worker dies while the caller holds a result: the pool learns of it only when it
    # submits the next job, and `submit` on a broken executor raises BrokenProcessPool.
    jobs = _tones(tmp_path, 24)
    starts: list[int] = []
    results = []
    with DecoderPool(2, on_start=starts.append) as pool:
        for result in pool.imap(track_features, jobs, FE, 8):
            results.append(result)
            if len(results) == 1:
                victim = decoder_pids(count=2)[-1]
                os.kill(victim, signal.SIGKILL)
                assert wait_gone(victim)
                time.sleep(0.5)  # the executor's own thread marks it broken
    assert starts == [2, 2]
    assert sorted(i for i, _, _ in results) == list(range(len(jobs)))
    assert not [r for _, _, r in results if isinstance(r, AudioDecodeError)]


@needs_proc
def test_a_worker_killed_while_idle_between_calls_is_replaced(tmp_path):
    # One pool serves a whole `beet import`: a worker may die while no job is in flight.
    jobs = _tones(tmp_path, 4)
    with DecoderPool(2) as pool:
        assert len(list(pool.imap(track_features, jobs, FE, 8))) == 4
        victim = decoder_pids(count=2)[0]
        os.kill(victim, signal.SIGKILL)
        assert wait_gone(victim)
        time.sleep(0.5)
        again = list(pool.imap(track_features, jobs, FE, 8))
    assert sorted(i for i, _, _ in again) == [0, 1, 2, 3]
    assert not [r for _, _, r in again if isinstance(r, AudioDecodeError)]


@pytest.mark.slow  # waits out a 2-s time limit, then starts new processes: 3 s
@needs_proc
def test_a_hung_decoder_fails_its_file_after_the_time_limit_and_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(decoder_pool, "DECODE_LIMIT_BASE_S", 2.0)
    monkeypatch.setattr(decoder_pool, "DECODE_LIMIT_S_PER_MB_EXCERPTS", 0.0)
    jobs = _tones(tmp_path, 10)
    hung = str(write_tone(tmp_path / "hang.flac", 200.0, seconds=4.0))
    jobs.insert(3, (10, hung))
    starts: list[int] = []
    began = time.monotonic()
    with DecoderPool(2, on_start=starts.append) as pool:
        results = {i: r for i, _, r in pool.imap(features_or_stop, jobs, FE, 8, whole_file=False)}
        assert time.monotonic() - began < 20
        stopped = [p for p in decoder_pids(timeout_s=0) if state_of(p) == "T"]
        assert not stopped  # killed, not left behind
        # The next call gets fresh processes.
        again = list(pool.imap(features_or_stop, jobs[:2], FE, 8, whole_file=False))
    assert sorted(results) == list(range(11))
    assert isinstance(results[10], AudioDecodeError)
    assert results[10].path == hung
    assert "decoding took longer than 2 s" in results[10].reason
    # Only the hung file is lost: the jobs of the other worker, killed with the pool, are redone.
    assert not [i for i, r in results.items() if i != 10 and isinstance(r, AudioDecodeError)]
    assert starts == [2, 2] and len(again) == 2


def test_the_time_limit_grows_with_the_file_and_with_whole_file_decoding():
    small, big = decoder_pool.decode_time_limit(1_000_000, True), decoder_pool.decode_time_limit(100_000_000, True)
    assert decoder_pool.DECODE_LIMIT_BASE_S < small < big
    assert decoder_pool.decode_time_limit(100_000_000, False) < big


def test_a_model_that_fails_at_inference_raises_model_error(tmp_path):
    clf = Classifier(build_failing_model(tmp_path / "failing.onnx"), device="cpu")
    assert clf.info.labels == ("Low", "High")  # it loads
    features = track_features(write_tone(tmp_path / "a.flac", 200.0, seconds=4.0), TINY_FRONTEND, 4)
    with pytest.raises(ModelError, match=r"failing\.onnx: the model failed while classifying \(.*Gather"):
        clf.predict([features])


def test_a_fifo_as_the_model_path_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ModelError, match="not a regular file"):
        _ = Classifier(fifo, device="cpu").info  # must not block opening it
    with pytest.raises(ModelError, match="model file not found"):
        _ = Classifier(tmp_path / "absent.onnx", device="cpu").info


_POOL_THEN_WAIT = """
import sys, time
from genre_model import DecoderPool, FrontendConfig, track_features
pool = DecoderPool(2)
print(len(list(pool.imap(track_features, [(0, sys.argv[1]), (1, sys.argv[1])], FrontendConfig(), 8))), flush=True)
time.sleep(600)
"""


@pytest.mark.slow
@needs_proc
def test_decoders_forkserver_and_resource_tracker_die_with_a_killed_caller(tmp_path):
    song = write_tone(tmp_path / "a.flac", 200.0, seconds=4.0)
    # TMPDIR: the killed process cannot remove its multiprocessing folder (pymp-*); it is left here.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _POOL_THEN_WAIT, str(song)], stdout=subprocess.PIPE, text=True, env=env
    )
    tree: list[int] = []
    try:
        assert proc.stdout.readline().strip() == "2"  # its decoders have run
        tree = descendants(proc.pid)
        assert len(tree) >= 4  # resource tracker, forkserver, two decoders
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and [p for p in tree if exists(p)]:
            time.sleep(0.05)
        assert not [p for p in tree if exists(p)]
    finally:
        proc.kill()
        for pid in tree:  # what a failure leaves behind, now children of init
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("ext", [".wav", ".mp3", pytest.param(".m4a", marks=needs_ffmpeg)])
def test_a_file_name_that_is_not_utf8_is_classified(tmp_path, tiny_model, ext):
    # On Linux a name is bytes; Python holds b"\xff" as the surrogate "\udcff", which a strict
    # UTF-8 encoder (a C library's path argument, a log line) refuses.
    good = write_tone(tmp_path / f"good{ext}", 200.0, seconds=4.0)
    bad = Path(os.fsdecode(os.fsencode(str(tmp_path)) + f"/bad\xff{ext}".encode("latin-1")))
    good.rename(bad)
    clf = Classifier(tiny_model, device="cpu")
    for workers in (0, 2):
        [outcome] = classify_files(clf, [bad], workers=workers)
        assert outcome.error is None, outcome.error
        assert outcome.prediction.top == "Low"
        assert outcome.path == str(bad)


@needs_ffmpeg
def test_a_non_audio_file_with_a_name_that_is_not_utf8_fails_with_its_reason(tmp_path):
    bad = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/notes\xff.xyz"))
    bad.write_bytes(b"not audio at all\n" * 100)
    with pytest.raises(AudioDecodeError, match="not a readable audio file"):
        probe(bad)


@needs_ffmpeg
@pytest.mark.parametrize("vbr", [False, True], ids=["cbr", "vbr"])
def test_a_headerless_mp3_with_a_big_cover_is_not_called_truncated(tmp_path, vbr):
    # libsndfile estimates a headerless MP3's length from the file size, tag included: a
    # 4.5 MB cover made a 20-s track "declare" 300 s and fail as truncated at 20 s.
    path = add_cover(write_headerless_mp3(tmp_path / "cover.mp3", 20.0, vbr), 4_500_000)
    assert abs(probe(path).duration - 20.0) < 0.2
    assert decode_windows(path, FE, 8).shape == (6, FE.window_samples)


@needs_ffmpeg
def test_a_headerless_vbr_mp3_is_heard_to_its_end(tmp_path):
    # From a first frame of low bitrate libsndfile guesses a VBR file far shorter than it is,
    # and reads no further than its guess.
    path = write_headerless_mp3(tmp_path / "vbr.mp3", 60.0, vbr=True)
    assert abs(probe(path).duration - 60.0) < 0.2
    assert decode_windows(path, FE, 8).shape == (8, FE.window_samples)


@needs_ffmpeg
def test_a_headerless_mp3_cut_short_fails_but_one_ending_in_a_partial_frame_and_a_tag_does_not(tmp_path):
    whole = write_headerless_mp3(tmp_path / "whole.mp3", 20.0)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioDecodeError, match="truncated or damaged"):
        decode_windows(cut, FE, 8)
    # The end is intact (an ID3v1 tag follows the audio), only the last frame is short: an
    # encoder's or editor's flaw of 26 ms, not a cut.
    flawed = tmp_path / "flawed.mp3"
    flawed.write_bytes(data[:-100] + b"TAG" + b"\0" * 125)
    assert decode_windows(flawed, FE, 8).shape == (6, FE.window_samples)
    assert decode_windows(whole, FE, 8).shape == (6, FE.window_samples)


@pytest.mark.parametrize("ext", [".ogg", ".opus"])
def test_an_ogg_file_cut_short_fails(tmp_path, ext):
    # A cut Ogg file loses its last page, whose granule position gave the length: libsndfile
    # then reports the shorter length and decodes all of it. A whole stream ends with an
    # end-of-stream page; a cut one cannot.
    whole = write_tone(tmp_path / f"whole{ext}", 300.0, seconds=20.0)
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(AudioDecodeError, match="truncated or damaged"):
        decode_windows(cut, FE, 8)
    assert decode_windows(whole, FE, 8).shape == (6, FE.window_samples)


@pytest.mark.slow  # waits out a 2-s time limit, then starts new processes: 3 s
@needs_proc
def test_decoders_stopped_while_idle_are_replaced_when_no_job_starts(tmp_path, monkeypatch):
    # An idle worker waits for a job holding the job queue's lock: stopped there, no worker can
    # take a job, so no job ever starts and no per-job limit can fire.
    monkeypatch.setattr(decoder_pool, "DECODE_LIMIT_BASE_S", 2.0)
    jobs = _tones(tmp_path, 4)
    starts: list[int] = []
    with DecoderPool(2, on_start=starts.append) as pool:
        assert len(list(pool.imap(track_features, jobs, FE, 8))) == 4
        for pid in decoder_pids(count=2):
            os.kill(pid, signal.SIGSTOP)
        began = time.monotonic()
        again = list(pool.imap(track_features, jobs, FE, 8, whole_file=False))
        assert time.monotonic() - began < 15
    assert sorted(i for i, _, _ in again) == [0, 1, 2, 3]
    assert not [r for _, _, r in again if isinstance(r, AudioDecodeError)]
    assert starts == [2, 2]
