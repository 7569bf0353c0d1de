"""Genres as sets: a clip that may carry several labels, from the manifest through the loss to the metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genre_model import FrontendConfig
from training.data.genres import select_labels
from training.data.taxonomy import label_set
from training.data.tracks import Track, load_manifest
from training.engine.losses import set_nll, training_loss
from training.errors import DatasetError
from training.evaluation.metrics import metrics_from_probs, track_metrics
from training.features.windows import TrackWindows, label_masks


def test_allmusic_genres_become_the_set_of_labels_a_clip_may_carry():
    assert label_set("4q", ["Pop/Rock", "Electronic"]) == ("Electronic", "Metal", "Pop", "Rock")
    assert label_set("4q", ["Rap", "Vocal"]) == ("Hip-Hop",)
    assert label_set("4q", ["Holiday", "Vocal"]) == ()  # says nothing about the sound
    assert label_set("mine", ["hip hop", "Rock"]) == ("Hip-Hop", "Rock")  # no mapping: our names, canonical
    with pytest.raises(DatasetError, match="Polka"):
        label_set("4q", ["Polka"])  # a genre the mapping has not decided


def test_manifest_genres_column_through_the_taxonomy(tmp_path):
    (tmp_path / "m.csv").write_text(
        "path,genres,dataset,group,split\n"
        "a.opus,Pop/Rock; Rap,4q,artist1,train\n"
        "b.opus,Jazz,4q,artist2,train\n"
        "c.opus,Holiday,4q,artist3,train\n"
    )
    a, b = load_manifest(tmp_path / "m.csv")  # the Holiday clip has no label of ours: left out
    assert a.genres == ("Hip-Hop", "Metal", "Pop", "Rock") and a.label == "Hip-Hop; Metal; Pop; Rock"
    assert b.genres == ("Jazz",) and b.label == "Jazz"


def test_vocabulary_restricts_sets_and_drops_what_it_cannot_name():
    tracks = [
        Track.with_genres("/a", ["Pop", "Rock", "Metal"], "g1", "4q"),
        Track.with_genres("/b", ["World"], "g2", "4q"),
        Track("/c", "rock", "g3", "gtzan"),
        Track("/d", "Pop", "g4", "gtzan"),
    ]
    kept, labels = select_labels(tracks, ["Rock", "Pop"], 1)
    assert labels == ["Rock", "Pop"] and [t.genres for t in kept] == [("Pop", "Rock"), ("Rock",), ("Pop",)]
    assert kept[1].label == "Rock"  # respelt as the vocabulary spells it


def test_set_loss_is_cross_entropy_for_one_label_and_ignores_the_split_within_a_set():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    one = torch.tensor([[True, False, False], [False, False, True]])
    log_probs = F.log_softmax(logits, dim=1)
    expected = F.cross_entropy(logits, torch.tensor([0, 2]), label_smoothing=0.1, reduction="none")
    torch.testing.assert_close(set_nll(log_probs, one, 0.1), expected)
    # Two logits that put the same mass on {0, 1} lose the same, however they split it.
    pair = torch.tensor([[True, True, False]])
    a = F.log_softmax(torch.tensor([[np.log(0.6), np.log(0.2), np.log(0.2)]]), dim=1)
    b = F.log_softmax(torch.tensor([[np.log(0.1), np.log(0.7), np.log(0.2)]]), dim=1)
    torch.testing.assert_close(set_nll(a, pair), set_nll(b, pair))
    torch.testing.assert_close(set_nll(a, pair), torch.tensor([-np.log(0.8)], dtype=a.dtype))


def test_mixup_and_distillation_losses_match_the_soft_target_cross_entropy():
    # The old loss: cross-entropy on lerp(one-hot, teacher, w), mixed by lam: the same numbers.
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, generator=g)
    y = torch.tensor([0, 3, 1, 4])
    teacher = torch.softmax(torch.randn(4, 5, generator=g), dim=1)
    perm, lam = torch.tensor([2, 0, 3, 1]), torch.tensor([0.9, 0.6, 0.7, 0.55])
    soft = torch.lerp(F.one_hot(y, 5).float(), teacher, 0.3)
    soft = lam[:, None] * soft + (1 - lam[:, None]) * soft[perm]
    old = F.cross_entropy(logits, soft, label_smoothing=0.05)
    new = training_loss(logits, F.one_hot(y, 5).bool(), 0.05, teacher, 0.3, (perm, lam))
    torch.testing.assert_close(new, old)


def test_sampler_counts_a_set_as_a_share_of_each_label():
    tracks = [Track.with_genres(f"/s{i}", ["Pop", "Rock"], f"g{i}", "4q") for i in range(4)]
    tracks += [Track(f"/r{i}", "Rock", f"h{i}", "gtzan") for i in range(2)]
    arrays = [np.zeros((2, 3), np.float32)] * len(tracks)
    w = TrackWindows(tracks, arrays, ["Pop", "Rock"], FrontendConfig(), rows=True)
    assert w.masks.tolist() == [[True, True]] * 4 + [[False, True]] * 2
    assert dict(w._sizes) == {0: 2.0, 1: 4.0}  # each Pop/Rock clip counts half to each
    drawn = w.balanced_indices(4000, np.random.default_rng(0), class_balance=0.0)
    # class_balance 0: labels drawn 2:4; Pop draws only set clips; Rock a source (4q or gtzan) uniformly.
    share_of_sets = np.isin(drawn, range(4)).mean()
    assert share_of_sets == pytest.approx(1 / 3 + 2 / 3 * 0.5, abs=0.03)
    with pytest.raises(ValueError, match="none of its genres"):
        label_masks([Track("/x", "Jazz", "g", "s")], ["Pop", "Rock"])


def test_metrics_count_a_track_right_when_its_top_genre_is_in_its_set():
    labels = ["Metal", "Pop", "Rock"]
    true = [{"Pop", "Rock", "Metal"}, "Rock", "Pop", "Pop"]
    got = track_metrics(true, ["Metal", "Rock", "Rock", "Pop"], labels)
    assert got["track_accuracy"] == pytest.approx(3 / 4)
    assert got["n_set_tracks"] == 1
    # Recall on single-label tracks; precision over every track called it.
    assert got["per_class"]["Pop"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
        "predicted": 1,
    }
    assert got["per_class"]["Rock"]["precision"] == 0.5 and got["per_class"]["Metal"]["precision"] == 1.0
    assert got["confusion"] == [[0, 0, 0], [0, 1, 1], [0, 0, 1]]  # the set track is not a row
    probs = [np.array([[0.1, 0.2, 0.7]]), np.array([[0.6, 0.3, 0.1]])]
    m = metrics_from_probs(probs, [("Pop", "Rock"), "Jazz"], labels)  # Jazz: no label of the model's
    assert m["track_accuracy"] == 1.0 and m["n_skipped"] == 1 and m["window_accuracy"] == 1.0


def test_evaluate_counts_a_clip_of_several_genres_right_when_its_top_genre_is_among_them(tmp_path, tiny_model):
    # The tiny model calls a low tone Low and a high one High; a clip filed under both is right either way.
    from click.testing import CliRunner
    from helpers.audio import write_tone

    from training.cli import main as cli

    write_tone(tmp_path / "low.flac", 200.0, seconds=6.0)
    write_tone(tmp_path / "high.flac", 5000.0, seconds=6.0)
    (tmp_path / "m.csv").write_text("path,genres,group\nlow.flac,High; Low,a\nhigh.flac,Low,b\n")
    result = CliRunner().invoke(
        cli, ["evaluate", str(tiny_model), str(tmp_path / "m.csv"), "--out", str(tmp_path / "ev")]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["track_accuracy"] == 0.5 and metrics["n_set_tracks"] == 1
