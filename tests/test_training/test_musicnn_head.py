"""The genre heads on the pretrained musicnn: fine-tuning on pooled features or front-end outputs by the
one training loop, export through the registry, recipes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from genre_model import Classifier, ModelInfo
from genre_model.frontend import musicnn_frontend
from training.data.tracks import Track
from training.engine.config import TrainConfig
from training.engine.loop import fit, predict_windows
from training.errors import ConfigError
from training.export.onnx_export import export_onnx
from training.features.windows import TrackWindows
from training.models.musicnn.heads import BackendHead, MidendHead, with_backbone
from training.models.musicnn.network import load_pretrained


def rows_per_track(x: np.ndarray, y: np.ndarray, per_track: int, crop_frames: int = 0) -> TrackWindows:
    """Window rows `x` (n, ...) with labels `y` as tracks of `per_track` consecutive rows, as the
    backbone cache hands them to the loop."""
    tracks, arrays = [], []
    for start in range(0, len(x), per_track):
        tracks.append(Track(f"t{start}.wav", f"L{y[start]}", f"g{start}", "synthetic"))
        arrays.append(x[start : start + per_track])
    labels = sorted({t.label for t in tracks})
    return TrackWindows(tracks, arrays, labels, musicnn_frontend(), rows=True, crop_frames=crop_frames)


def test_pretrained_back_end_reproduces_musicnn_embedding():
    backbone = load_pretrained("msd_musicnn").eval()
    head = BackendHead.pretrained(3, backbone=backbone).eval()
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 2, (2, 96, 187)).astype(np.float32))
    with torch.no_grad():
        ours = head(backbone.pooled(x))[1]
        theirs = backbone(x).embedding
    torch.testing.assert_close(ours, theirs)


def test_pretrained_mid_end_head_on_cached_front_end_is_the_backbone():
    # Partial fine-tuning starts exactly where the network stands: the mid-end head on the front
    # end's output, even stored as float16 as the cache does, gives musicnn's own embedding.
    backbone = load_pretrained("msd_musicnn").eval()
    head = MidendHead.pretrained(3, backbone=backbone).eval()
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 2, (2, 96, 187)).astype(np.float32))
    with torch.no_grad():
        frontend = backbone.frontend(x)
        theirs = backbone(x).embedding
        torch.testing.assert_close(head(frontend)[1], theirs)
        half = head(frontend.half().float())[1]
    assert (half - theirs).abs().max() < 0.05 * theirs.abs().max()
    # The copy is the head's own: training it leaves the backbone untouched.
    assert head.midend[0].conv.weight.data_ptr() != backbone.midend[0].conv.weight.data_ptr()


@pytest.mark.slow
def test_loop_fine_tunes_the_mid_end_on_front_end_rows():
    # Front-end outputs whose labels differ only in the rhythm of a few channels (on every other
    # frame, or 4 on then 4 off: the same mean and max, so only the time convs tell them apart).
    rng = np.random.default_rng(0)
    y = np.repeat(rng.integers(0, 2, 64), 4)  # 64 tracks of 4 windows
    x = rng.normal(0, 1, (256, 561, 187)).astype(np.float16)
    frames = np.arange(187)
    for i, label in enumerate(y):
        on = (frames % 2 == 0) if label == 0 else (frames % 8 < 4)
        x[i, :40, on] += 3
    config = TrainConfig(arch="musicnn-midend", epochs=6, batch_size=32, windows_per_track=4, midend_lr_scale=0.3,
                         crop_frames=160, valid_fraction=0.0, warmup_epochs=0.5)  # fmt: skip
    before = MidendHead.pretrained(2).midend[0].conv.weight.detach().clone()
    result = fit(rows_per_track(x, y, 4, crop_frames=160), None, config, log=lambda s: None)
    head = result.model
    assert isinstance(head, MidendHead)
    assert (head.midend[0].conv.weight - before).abs().max() > 1e-3
    accuracy = (predict_windows(head, x, torch.device("cpu")).argmax(axis=1) == y).mean()
    assert accuracy > 0.9, accuracy


@pytest.mark.slow
def test_loop_fine_tunes_the_back_end_on_pooled_rows_at_two_rates():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (3, 1506)).astype(np.float32)
    y = np.repeat(rng.integers(0, 3, 60), 10)  # 60 tracks of 10 windows
    x = centres[y] + rng.normal(0, 1, (600, 1506)).astype(np.float32)
    config = TrainConfig(arch="musicnn-backend", epochs=5, batch_size=64, windows_per_track=10,
                         backbone_lr_scale=0.0, feature_noise=0.1, valid_fraction=0.0)  # fmt: skip
    pretrained = BackendHead.pretrained(3).dense.weight.detach().clone()
    head = fit(rows_per_track(x, y, 10), None, config, log=lambda s: None).model
    assert isinstance(head, BackendHead) and head.noise == 0.1
    # backbone_lr_scale 0: the pretrained back end stays as it was (weight decay scales with the rate too).
    torch.testing.assert_close(head.dense.weight.detach(), pretrained)
    accuracy = (predict_windows(head, x, torch.device("cpu")).argmax(axis=1) == y).mean()
    assert accuracy > 0.9, accuracy


def test_export_joins_the_backbone_and_names_the_embedding(tmp_path):
    # The loop trains only the head; the export puts the frozen backbone under it (the registry's
    # `exportable`), so the file reads log-mel windows and gives musicnn's embedding as a 2nd output.
    head = BackendHead.pretrained(4).eval()
    info = ModelInfo(name="mnn-test", version="1", labels=("A", "B", "C", "D"), frontend=musicnn_frontend())
    windows = np.random.default_rng(1).uniform(0, 2, (3, 96, 187)).astype(np.float32)
    export_onnx(head, info, tmp_path / "m.onnx", windows)
    clf = Classifier(tmp_path / "m.onnx", device="cpu")
    assert clf.info.frontend == musicnn_frontend() and clf.info.labels == ("A", "B", "C", "D")
    assert clf.info.training["model_config"] == {"arch": "musicnn-backend", "n_labels": 4, "dropout": 0.5}
    model = with_backbone(head).eval()
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["probabilities", "embedding"]
    probs, embedding = session.run(None, {"input": windows})
    with torch.no_grad():
        logits, expected = model(torch.from_numpy(windows))
    np.testing.assert_allclose(embedding, expected.numpy(), atol=1e-4)
    np.testing.assert_allclose(probs, clf.window_probabilities(windows), atol=1e-6)


def test_musicnn_recipes_keep_the_backbones_front_end(tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"arch": "musicnn-backend", "name": "x", "comment": "why"}))
    assert TrainConfig.read(recipe).frontend_config() == musicnn_frontend()
    for bad in ({"arch": "musicnn-backend", "frontend": {"n_mels": 64}}, {"arch": "msd_vgg"}, {"backend": {}}):
        recipe.write_text(json.dumps(bad))
        with pytest.raises(ConfigError):
            TrainConfig.read(recipe)


@pytest.mark.slow
def test_fit_command_builds_a_partially_fine_tuned_model(genre_folder, tmp_path):
    # `genreclass-train fit` with a recipe that tunes the mid-end: front-end outputs cached,
    # the mid-end trained, one file that the plugin's runtime loads and that tells the clips apart.
    from click.testing import CliRunner

    from genre_model import classify_files
    from training.cli import main as cli

    recipe = tmp_path / "recipe.json"
    settings = {"arch": "musicnn-midend", "epochs": 25, "batch_size": 16, "windows_per_track": 1, "crop_frames": 160,
                "valid_fraction": 0.0, "min_tracks": 2}  # fmt: skip
    recipe.write_text(json.dumps({"name": "mid-test", "seed": 1, **settings}))
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["fit", str(genre_folder), "--config", str(recipe), "--out", str(out), "--cache", str(cache)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "split: 24 train, 0 valid tracks" in result.output
    assert len(list(cache.glob("musicnn-frontend-*-all/*.npy"))) == 24
    clf = Classifier(out / "model.onnx", device="cpu")
    assert clf.info.training["arch"] == "musicnn-midend" and clf.info.training["config"]["crop_frames"] == 160
    paths = sorted(genre_folder.glob("*/*"))
    outcomes = list(classify_files(clf, paths, max_windows=4, workers=0))
    right = sum(o.prediction.genres[0][0] == Path(o.path).parent.name for o in outcomes)
    assert right >= 20, [(o.path, o.prediction.genres[:2]) for o in outcomes]


def test_init_from_tags_starts_each_label_where_musicnns_tagger_stands():
    # A label's logit is the mean of its tags' logits in musicnn's own tag layer; an untagged label
    # (Reggae) keeps a fresh row.
    from training.models.musicnn.heads import build_backend
    from training.models.musicnn.network import pretrained_labels

    backbone = load_pretrained("msd_musicnn").eval()
    labels = ["Jazz", "Metal", "Reggae"]
    head = build_backend(TrainConfig(arch="musicnn-backend", init_from_tags=True), labels).eval()
    x = torch.from_numpy(np.random.default_rng(3).uniform(0, 2, (2, 96, 187)).astype(np.float32))
    tags = pretrained_labels("msd_musicnn")
    with torch.no_grad():
        ours = head(backbone.pooled(x))[0]
        theirs = backbone(x).logits
    torch.testing.assert_close(ours[:, 0], theirs[:, tags.index("jazz")])
    torch.testing.assert_close(ours[:, 1], theirs[:, [tags.index("metal"), tags.index("heavy metal")]].mean(dim=1))
    fresh = build_backend(TrainConfig(arch="musicnn-backend"), labels).classifier.weight[2]
    assert not torch.allclose(head.classifier.weight[2], head.classifier.weight[0])
    assert fresh.abs().max() < 0.1 and head.classifier.weight[2].abs().max() < 0.1  # a fresh layer's scale


def test_tag_prior_mixes_musicnns_own_tagger_into_the_learnt_head_outside_training():
    # tag_prior_weight w: p = (1 - w) p_head + w p_tags at inference, the learnt head alone while
    # training; a label no MSD tag names (Reggae) gets nothing from the prior.
    from training.models.musicnn.heads import build_backend, tag_prior

    labels = ["Jazz", "Metal", "Reggae"]
    config = TrainConfig(arch="musicnn-backend", init_from_tags=True, tag_prior_weight=0.3)
    torch.manual_seed(0)
    mixed = build_backend(config, labels).eval()
    torch.manual_seed(0)
    plain = build_backend(TrainConfig(arch="musicnn-backend", init_from_tags=True), labels).eval()
    # The prior is built on a forked random state: the learnt part starts exactly as without it.
    own = {k: v for k, v in mixed.state_dict().items() if not k.startswith("tag_prior.")}
    assert own.keys() == plain.state_dict().keys()
    for key, value in own.items():
        torch.testing.assert_close(value, plain.state_dict()[key])
    pooled = (
        load_pretrained("msd_musicnn")
        .eval()
        .pooled(torch.from_numpy(np.random.default_rng(4).uniform(0, 2, (3, 96, 187)).astype(np.float32)))
        .detach()
    )
    with torch.no_grad():
        p_head = torch.softmax(plain(pooled)[0], dim=1)
        p_tags = torch.softmax(tag_prior(labels)(pooled)[0], dim=1)
        p_mixed = torch.softmax(mixed(pooled)[0], dim=1)
        torch.testing.assert_close(p_mixed, 0.7 * p_head + 0.3 * p_tags)
        assert float(p_tags[:, 2].max()) == 0.0 and float(p_tags[:, :2].sum(dim=1).min()) > 0.999
        torch.testing.assert_close(mixed(pooled)[1], plain(pooled)[1])  # the embedding output is the head's
        mixed.train()
        assert not mixed.tag_prior.training  # its batch norms keep musicnn's statistics
        torch.manual_seed(1)
        train_logits = mixed(pooled)[0]
        plain.train()
        torch.manual_seed(1)
        torch.testing.assert_close(train_logits, plain(pooled)[0])
    prior_params = {id(p) for p in mixed.tag_prior.parameters()}
    learnt = [p for params, _ in mixed.parameter_groups(config) for p in params]
    assert learnt and not prior_params & {id(p) for p in learnt}
    assert mixed.model_config()["tag_prior_weight"] == 0.3
    for bad in (
        {"tag_prior_weight": 1.0},
        {"tag_prior_weight": 0.2, "arch": "musicnn-midend"},
        {"tag_prior_weight": -0.1},
    ):
        with pytest.raises(ConfigError):
            TrainConfig(**{"arch": "musicnn-backend", **bad})


def test_export_and_checkpoint_carry_the_tag_prior(tmp_path):
    # The exported file holds both back ends and gives the mixture; a checkpoint's model_config
    # rebuilds the same network (the prior's weights travel in the state dict).
    from training.engine.checkpoint import rebuild_network
    from training.models.musicnn.heads import build_backend

    labels = ("Jazz", "Metal", "Pop", "Reggae")
    head = build_backend(TrainConfig(arch="musicnn-backend", init_from_tags=True, tag_prior_weight=0.2), labels)
    with torch.no_grad():  # a learnt head that differs from the prior
        head.classifier.weight.add_(0.05 * torch.randn_like(head.classifier.weight))
        head.dense.weight.mul_(1.1)
    head.eval()
    info = ModelInfo(name="prior-test", version="1", labels=labels, frontend=musicnn_frontend())
    windows = np.random.default_rng(5).uniform(0, 2, (3, 96, 187)).astype(np.float32)
    export_onnx(head, info, tmp_path / "m.onnx", windows)
    clf = Classifier(tmp_path / "m.onnx", device="cpu")
    assert clf.info.training["model_config"]["tag_prior_weight"] == 0.2
    rebuilt = rebuild_network(head.model_config())
    rebuilt.load_state_dict(head.state_dict())
    expected = predict_windows(with_backbone(rebuilt).eval(), windows, torch.device("cpu"))
    np.testing.assert_allclose(clf.window_probabilities(windows), expected, atol=1e-5)
    assert np.allclose(clf.window_probabilities(windows).sum(axis=1), 1.0, atol=1e-5)
    # The mixture, not the learnt head alone: the prior's weight moves the probabilities.
    rebuilt.prior_weight = 0.0
    alone = predict_windows(with_backbone(rebuilt).eval(), windows, torch.device("cpu"))
    assert np.abs(alone - expected).max() > 1e-3
