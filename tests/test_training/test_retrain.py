"""Retraining pieces: weights read back from an exported file, vocabulary, artist split, comparison."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genre_model import Classifier, FrontendConfig, ModelInfo
from genre_model.classifier import bundled_model_path
from training.data.genres import select_labels, shared_label_indices
from training.data.tracks import Track, unify_spellings
from training.engine.config import TrainConfig
from training.errors import NotEnoughData
from training.export.backbone import BackboneError, read_backbone, transplant_head
from training.export.onnx_export import export_onnx
from training.models.cnn import build_from_config
from training.pipelines.retrain import split_by_artist


@pytest.mark.parametrize("arch", ["cnn", "crnn"])
def test_backbone_weights_come_back_exactly_from_the_exported_file(tmp_path, arch):
    torch.manual_seed(0)
    net = build_from_config(TrainConfig(arch=arch, channels=(8, 16, 16)), ["A", "B", "C"])
    cfg = net.config
    with torch.no_grad():  # trained-looking batch-norm statistics, not the defaults
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
    windows = np.random.default_rng(0).normal(-40, 10, (4, 64, 92)).astype(np.float32)
    info = ModelInfo("t", "1", ("A", "B", "C"), FrontendConfig())
    export_onnx(net, info, tmp_path / "m.onnx", windows)
    got_info, got_cfg, state = read_backbone(tmp_path / "m.onnx")
    assert got_cfg == cfg and got_info.labels == ("A", "B", "C")
    own = net.state_dict()
    assert state and all(k.startswith(("frontend.", "blocks.", "head.")) for k in state)
    assert "head.1.weight" in state
    for key, value in state.items():
        assert torch.equal(value, own[key]), key


def test_the_bundled_fast_model_can_seed_fine_tuning():
    info, cfg, state = read_backbone(bundled_model_path("fast"))
    assert cfg.arch == "cnn" and len(info.labels) == cfg.n_labels == 13
    assert state["blocks.0.0.weight"].shape == (cfg.channels[0], 1, 3, 3)
    # A new vocabulary keeps the output rows of the genres it shares with the bundled one.
    new = transplant_head(state, info.labels, ["rock", "Ambient", "Jazz"])
    assert new["head.1.weight"].shape == (3, 2 * cfg.channels[-1])
    assert torch.equal(new["head.1.weight"][0], state["head.1.weight"][info.labels.index("Rock")])
    assert torch.equal(new["head.1.bias"][2], state["head.1.bias"][info.labels.index("Jazz")])
    # A genre the bundled model does not know starts as a fresh layer's row (|w| <= 1/sqrt(fan_in)),
    # the same for the same seed, taken from none of the old rows.
    fresh = new["head.1.weight"][1]
    assert fresh.abs().max() <= 1 / (2 * cfg.channels[-1]) ** 0.5
    assert torch.equal(fresh, transplant_head(state, info.labels, ["rock", "Ambient", "Jazz"])["head.1.weight"][1])
    assert not any(torch.allclose(fresh, row) for row in state["head.1.weight"])


def test_a_file_without_architecture_is_refused_with_a_reason(tiny_model):
    with pytest.raises(BackboneError, match="model_config"):
        read_backbone(tiny_model)


def _tracks(spec: dict[str, list[str]]) -> list[Track]:
    """{label: [artist of each track]} -> tracks."""
    return [
        Track(f"/{label}/{i}", label, artist, "beets")
        for label, artists in spec.items()
        for i, artist in enumerate(artists)
    ]


def test_labels_are_kept_by_count_or_vocabulary_and_shortfalls_named():
    tracks = _tracks({"Rock": ["a"] * 12, "Jazz": ["b"] * 10, "Polka": ["c"] * 3})
    kept, labels = select_labels(tracks, None, 10)
    assert labels == ["Jazz", "Rock"] and len(kept) == 22
    kept, labels = select_labels(tracks, ["rock", "POLKA"], 10)
    assert labels == ["rock", "POLKA"] and {t.label for t in kept} == {"rock", "POLKA"}
    with pytest.raises(NotEnoughData, match=r"Polka 3 \(needs 17 more\)"):
        select_labels(tracks, None, 20)
    with pytest.raises(NotEnoughData, match=r"short: Blues \(0\)"):
        select_labels(tracks, ["Rock", "Blues"], 10)


def test_split_by_artist_keeps_artists_whole():
    tracks = _tracks({"Rock": ["a", "a", "b", "b", "c", "c", "d"], "Jazz": ["e", "e", "f", "f", "g", "h", "h"]})
    train, valid = split_by_artist(tracks, ["Jazz", "Rock"], 0.25)
    assert valid and not {t.group for t in train} & {t.group for t in valid}
    train, valid = split_by_artist(_tracks({"Rock": ["a", "b"], "Jazz": ["c", "c"]}), ["Jazz", "Rock"], 0.2)
    assert len({t.group for t in valid}) == 1  # 3 artists cannot fill 5 folds: one of 3 is held out
    with pytest.raises(NotEnoughData, match="one album artist"):
        split_by_artist(_tracks({"Rock": ["a"] * 5, "Jazz": ["a"] * 5}), ["Jazz", "Rock"])


def test_spellings_unify_and_vocabularies_map_up_to_case():
    tracks = unify_spellings(_tracks({"CHIME": ["a"], "Chime": ["b"], "chime": ["c", "d"], "Rock": ["e"]}))
    assert sorted({t.label for t in tracks}) == ["Rock", "chime"]  # most common spelling wins
    bundled = Classifier(bundled_model_path()).info.labels
    assert shared_label_indices(["hip hop", "Drone", "ROCK"], bundled) == {
        0: bundled.index("Hip-Hop"),
        2: bundled.index("Rock"),
    }


def test_alias_files_are_read_or_refused_with_the_reason(tmp_path):
    from training.data.genres import read_aliases

    good = tmp_path / "aliases.yaml"
    good.write_text("hip hop: Hip-Hop\nsynthwave: Electronic\n")
    assert read_aliases(good) == {"hip hop": "Hip-Hop", "synthwave": "Electronic"}
    bad = tmp_path / "list.yaml"
    bad.write_text("- Rock\n- Jazz\n")
    with pytest.raises(ValueError, match="must map spellings"):
        read_aliases(bad)
    with pytest.raises(ValueError, match="cannot read"):
        read_aliases(tmp_path / "missing.yaml")
