"""`genreclass-train fit` under torchrun: 2 CPU processes (gloo) on a small generated dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.markers import needs_proc
from helpers.processes import children, environment

from genre_model import Classifier, classify_files
from training.engine.checkpoint import read_checkpoint
from training.engine.distributed import DistributedError, World, world_from_env

BIN = Path(sys.executable).parent
# A small network, and every random augmentation off: what is left between a world of 1 and a
# world of 2 is batch norm's statistics, taken over each rank's half of the batch.
SMALL = ["--set", "channels=[8,16]", "--set", "batch_size=16", "--device", "cpu", "--seed", "3"]
NO_AUGMENT = [
    *("--set", "dropout=0", "--set", "augment.gain_db=0", "--set", "augment.tilt_db=0"),
    *("--set", "augment.freq_masks=0", "--set", "augment.time_masks=0", "--set", "augment.mixup_alpha=0"),
]


def _fit(genre_folder: Path, out: Path, *extra: str, nproc: int = 1, wait: bool = True):
    fit = [str(BIN / "genreclass-train"), "fit", str(genre_folder), "--out", str(out), "--cache", str(out.parent / "cache")]  # fmt: skip
    if nproc > 1:
        fit = [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", str(nproc), *fit]
    # The checkout first on the path: torchrun's workers import `training` from it. TMPDIR: torchrun's
    # log folders (torchelastic_*) go beside the run, not to /tmp.
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parents[2]),
        "OMP_NUM_THREADS": "1",
        "TMPDIR": str(out.parent),
    }
    if not wait:
        return subprocess.Popen([*fit, *SMALL, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    return subprocess.run([*fit, *SMALL, *extra], env=env, capture_output=True, text=True, timeout=600)


def _losses(out: Path, key: str = "train_loss") -> np.ndarray:
    return np.array([h[key] for h in json.loads((out / "history.json").read_text())])


def test_world_from_torchruns_environment():
    assert world_from_env({}) == World()
    world = world_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (world.rank, world.local_rank, world.size, world.is_main) == (3, 1, 4, False)
    assert world.shard(list(range(10))) == [3, 7]
    assert sum(len(World(r, r, 4).shard(range(10))) for r in range(4)) == 10
    with pytest.raises(DistributedError, match="RANK 4 outside a world of 4"):
        world_from_env({"WORLD_SIZE": "4", "RANK": "4"})


@pytest.mark.slow
def test_two_processes_train_one_model_the_plugin_loads_and_agree_with_one(genre_folder, tmp_path):
    one = _fit(genre_folder, tmp_path / "one", "--epochs", "4", *NO_AUGMENT)
    two = _fit(genre_folder, tmp_path / "two", "--epochs", "4", *NO_AUGMENT, nproc=2)
    assert one.returncode == 0 and two.returncode == 0, two.stdout + two.stderr
    # One set of outputs, written once, and the world recorded.
    lines = two.stdout.splitlines()
    assert lines[0] == "training on 2 processes (torchrun, backend gloo)"
    assert sum(line.startswith("epoch") for line in lines) == 4  # rank 0 speaks for both
    assert json.loads((tmp_path / "two" / "config.json").read_text())["run"] == {"world_size": 2, "backend": "gloo"}
    assert json.loads((tmp_path / "one" / "config.json").read_text())["run"] == {"world_size": 1, "backend": "none"}
    # The same global batches, gradients averaged: the curves agree up to batch norm's per-rank
    # statistics (measured: at most 0.092 on the training loss, 0.028 on the validation loss).
    np.testing.assert_allclose(_losses(tmp_path / "two"), _losses(tmp_path / "one"), atol=0.12)
    np.testing.assert_allclose(_losses(tmp_path / "two", "valid_loss"), _losses(tmp_path / "one", "valid_loss"), atol=0.05)  # fmt: skip
    assert _losses(tmp_path / "two")[-1] < 0.6 * _losses(tmp_path / "two")[0]
    # The exported model classifies real files in the plugin's runtime.
    clf = Classifier(tmp_path / "two" / "model.onnx", device="cpu")
    paths = sorted(genre_folder.rglob("*.flac"))
    outcomes = sorted(classify_files(clf, paths, max_windows=2, workers=0), key=lambda o: o.index)
    right = [o.prediction.top == Path(o.path).parent.name for o in outcomes]
    assert np.mean(right) >= 0.8
    # Fine-tuning from a trained model's weights (--init) runs the same way under torchrun.
    tuned = _fit(
        genre_folder, tmp_path / "tuned", "--epochs", "1", "--init", str(tmp_path / "two" / "best.pt"), nproc=2
    )
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    # Started from trained weights, its first epoch's validation loss is already near the end of the first run's.
    assert _losses(tmp_path / "tuned", "valid_loss")[0] < _losses(tmp_path / "two", "valid_loss")[0]


def _find_rank(launcher: int, rank: int, seconds: float = 10.0) -> int:
    """The pid of torchrun's worker of `rank`, looked for until it is found or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [pid for pid in children(launcher) if environment(pid).get("RANK") == str(rank)]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"rank {rank} not found among torchrun's processes")


@pytest.mark.slow
@needs_proc  # finds the ranks through /proc
def test_a_killed_rank_stops_the_run_and_resume_continues(genre_folder, tmp_path):
    out = tmp_path / "run"
    proc = _fit(genre_folder, out, "--epochs", "30", "--set", "patience=0", nproc=2, wait=False)
    try:
        deadline = time.monotonic() + 300
        while not (out / "last.pt").exists():  # wait for the first epoch's checkpoint
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else ""
            time.sleep(0.2)
        os.kill(_find_rank(proc.pid, 1), signal.SIGKILL)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "genreclass-train FAILED" in output or "ChildFailedError" in output, output[-2000:]
    assert "exitcode  : -9" in output or "Signal 9 (SIGKILL)" in output, output[-2000:]
    done = len(read_checkpoint(out / "last.pt")["history"])
    assert 1 <= done < 30
    # --resume continues from the last checkpoint, here on one process: another world size.
    resumed = _fit(genre_folder, out, "--epochs", "30", "--set", "patience=0", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming after epoch {done}" in resumed.stdout
    assert "the run was saved by 2 processes, resumed by 1: augmentation reseeded" in resumed.stdout
    epochs = [int(line.split()[1]) for line in resumed.stdout.splitlines() if line.startswith("epoch")]
    assert epochs == list(range(done + 1, 31))
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == list(range(1, 31))
    assert (out / "model.onnx").is_file()
