"""Classifier, vote and the multi-file pipeline, on a tiny model with known answers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.models import TINY_FRONTEND, build_tiny_model, tiny_model_probabilities

from genre_model import (
    Classifier,
    ModelError,
    Outcome,
    classify_files,
    in_input_order,
    pool_tracks,
    track_features,
    vote,
)

ROOT = Path(__file__).resolve().parents[2]


def test_low_and_high_tones_in_every_format(tiny_model, tones):
    clf = Classifier(tiny_model, device="cpu")
    names = sorted(tones)
    preds = clf.predict([track_features(tones[n], clf.info.frontend, 4) for n in names])
    for name, pred in zip(names, preds, strict=True):
        assert pred.top == ("Low" if name.startswith("low") else "High"), name
        assert pred.confidence > 0.9
        assert pred.n_windows == 4  # 6 s hold six 1 s windows, capped at 4
        assert pred.window_probs.shape == (4, 2)
        assert sum(p for _, p in pred.genres) == pytest.approx(1.0, abs=1e-5)


def test_batches_across_tracks_give_the_same_answer(tiny_model, tones):
    feats = [track_features(p, TINY_FRONTEND, 5) for p in tones.values()]
    together = Classifier(tiny_model, batch_size=3).predict(feats)
    alone = [Classifier(tiny_model, batch_size=64).predict([f])[0] for f in feats]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.window_probs, b.window_probs, atol=1e-6)


def test_vote_mean_and_majority():
    probs = np.array([[0.9, 0.1, 0.0], [0.4, 0.6, 0.0], [0.45, 0.55, 0.0]], dtype=np.float32)
    mean = vote(probs, ["A", "B", "C"], "mean")
    assert mean.top == "A" and mean.confidence == pytest.approx(0.5833, abs=1e-3)
    majority = vote(probs, ["A", "B", "C"], "majority")
    assert majority.top == "B" and majority.confidence == pytest.approx(2 / 3)
    assert majority.selected(2, 0.3) == ["B", "A"]
    assert majority.selected(2, 0.5) == ["B"]


def test_pipeline_with_workers_reports_bad_files_and_classifies_the_rest(tiny_model, tones, tmp_path):
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"fLaC" + bytes(300))
    paths = [*tones.values(), bad]
    clf = Classifier(tiny_model, batch_size=4)
    for workers in (0, 2):
        outcomes = sorted(classify_files(clf, paths, max_windows=3, workers=workers), key=lambda o: o.index)
        assert [o.index for o in outcomes] == list(range(len(paths)))
        assert outcomes[-1].error is not None and outcomes[-1].error.path == str(bad)
        for o in outcomes[:-1]:
            assert o.prediction.top == ("Low" if "low" in o.path else "High")


def test_outcomes_in_input_order_whatever_order_they_finish_in():
    """Results print in the tracks' order on every run: a decoder that finishes early waits for
    the earlier tracks; closing the ordered stream closes the pipeline's (stopping its decoders)."""
    finished = [Outcome(i, f"{i}.flac") for i in (2, 0, 3, 1, 5, 4)]
    assert [o.index for o in in_input_order(iter(finished))] == [0, 1, 2, 3, 4, 5]
    closed = []

    def pipeline():
        try:
            yield from finished
        finally:
            closed.append(True)

    ordered = in_input_order(pipeline())
    assert next(ordered).index == 0 and not closed
    ordered.close()
    assert closed == [True]


def test_cpu_device_runs_the_graph_on_the_cpu_alone_and_computes_it_right(tiny_model, tones):
    # onnxruntime-gpu (installed on Linux x86-64) offers CUDA and TensorRT too: "cpu" must ask for
    # neither. What the session computes must be the model's arithmetic (band means, weights,
    # softmax over the labels), checked against numpy rather than against onnxruntime itself.
    clf = Classifier(tiny_model, device="cpu")
    assert clf.providers == ["CPUExecutionProvider"]
    windows = np.concatenate([track_features(tones[n], TINY_FRONTEND, 3) for n in ("low.flac", "high.mp3")])
    np.testing.assert_allclose(clf.window_probabilities(windows), tiny_model_probabilities(windows), atol=1e-5)
    with pytest.raises(ModelError, match=r"^device must be one of auto, cpu, cuda, got 'tpu'$"):
        Classifier(tiny_model, device="tpu")  # refused when made, before any file is read


def test_model_errors(tmp_path):
    cases = {}
    cases["not found"] = tmp_path / "missing.onnx"
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not onnx")
    cases["not a loadable ONNX model"] = corrupt
    cases["not valid JSON"] = build_tiny_model(tmp_path / "badjson.onnx", metadata="{nope")
    cases["format"] = build_tiny_model(tmp_path / "old.onnx", metadata=json.dumps({"format": 0}))
    cases["does not match 3 labels"] = build_tiny_model(tmp_path / "labels.onnx", labels=("A", "B", "C"), n_outputs=2)
    no_meta = build_tiny_model(tmp_path / "nometa.onnx")
    import onnx

    proto = onnx.load(str(no_meta))
    del proto.metadata_props[:]
    onnx.save(proto, str(no_meta))
    cases["no 'genreclass' metadata"] = no_meta
    for message, path in cases.items():
        clf = Classifier(path)  # lazy: nothing is read yet
        with pytest.raises(ModelError, match=message):
            _ = clf.info


def test_cuda_request_without_cuda_is_a_clear_error(tiny_model, capfd):
    from genre_model.classifier import _cuda_usable

    if _cuda_usable():
        pytest.skip("this machine has CUDA")
    assert Classifier(tiny_model, device="auto").providers == ["CPUExecutionProvider"]
    with pytest.raises(ModelError, match="cannot use CUDA"):
        _ = Classifier(tiny_model, device="cuda").info
    assert capfd.readouterr().err == ""  # no raw onnxruntime lines: our error says it all


def test_pool_tracks_averages_track_scores_each_track_once():
    labels = ["A", "B", "C"]
    # Track 1: four windows all for A; track 2: one window for B. Window-pooling would give A
    # 0.8; the album's verdict counts each track once: A and B 0.5 each, A first on the tie.
    one = vote(np.tile([[1.0, 0.0, 0.0]], (4, 1)), labels)
    two = vote(np.array([[0.0, 1.0, 0.0]]), labels)
    album = pool_tracks([one, two])
    assert album.genres == (("A", 0.5), ("B", 0.5), ("C", 0.0))
    assert album.n_windows == 5 and album.confidence == 0.5
    three = vote(np.array([[0.0, 0.9, 0.1]]), labels)
    pooled = pool_tracks([one, two, three])
    assert pooled.top == "B" and pooled.confidence == pytest.approx(1.9 / 3)
    assert pool_tracks([three]).genres == three.genres
    with pytest.raises(ValueError):
        pool_tracks([one, vote(np.array([[1.0, 0.0]]), ["A", "D"])])


def test_selected_renames_and_drops_labels_the_next_taking_their_place():
    pred = vote(np.array([[0.5, 0.3, 0.15, 0.05]]), ["Disco", "Hip-Hop", "Pop", "Rock"])
    assert pred.selected(1, 0.1) == ["Disco"]
    assert pred.selected(1, 0.1, {"Disco": "", "Hip-Hop": "Hip Hop"}) == ["Hip Hop"]
    assert pred.selected(2, 0.1, {"Disco": ""}) == ["Hip-Hop", "Pop"]
    # The replacement must reach min_confidence itself.
    assert pred.selected(2, 0.2, {"Disco": ""}) == ["Hip-Hop"]
    # Two labels written alike count once.
    assert pred.selected(2, 0.1, {"Disco": "Dance", "Hip-Hop": "Dance"}) == ["Dance", "Pop"]


def test_classifying_writes_nothing_in_the_home_folder(tmp_path, tiny_model, tones):
    # onnxruntime 1.31 keeps usage events under ~/.cache/Microsoft unless told not to.
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"} | {"HOME": str(home)}
    code = (
        "import sys; from genre_model import Classifier, classify_files; "
        f"c = Classifier({str(tiny_model)!r}); "
        f"print([o.prediction.top for o in classify_files(c, [{str(tones['low.flac'])!r}], 2, workers=0)])"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "Low" in proc.stdout, proc.stderr
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []
