"""Retraining's cross-validated estimate: folds over artists, refusals that say what is short, heads
that learn from sets, beets' genre tree, and the whole run on real audio with a tiny backbone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.audio import tone, write_audio
from helpers.models import build_tiny_backbone

from genre_model import Classifier
from training.data.genre_tree import GenreTree, roll_up, rollup_text
from training.data.genres import shared_label_indices
from training.data.tracks import Track
from training.models.personal_head import fit_head
from training.pipelines.retrain import RetrainOptions
from training.pipelines.retrain_cv import NoEstimate, estimate_problems, plan_folds
from training.pipelines.retrain_estimated import estimate_lines, retrain_estimated


def _tracks(spec: dict[str, list[str]]) -> list[Track]:
    """{genres ('Rock; Pop' for a set): [artist of each track]} -> tracks."""
    return [
        Track.with_genres(f"/{genres}/{i}", genres.split("; "), f"artist-{artist}", "beets")
        for genres, artists in spec.items()
        for i, artist in enumerate(artists)
    ]


def test_folds_keep_artists_whole_and_every_genre_in_training():
    tracks = _tracks({"Rock": list("aabbccddee"), "Jazz": list("ffgghh"), "Blues": list("iijj"), "Rock; Jazz": ["k"]})
    plan = plan_folds(tracks, ["Blues", "Jazz", "Rock"])
    assert plan.k == 5
    for fold in range(plan.k):
        train, held = plan.sides(fold)
        assert not {tracks[i].group for i in train} & {tracks[i].group for i in held}
        assert {"Blues", "Jazz", "Rock"} <= {g for i in train for g in tracks[i].genres}
    # Blues has 2 artists and Jazz 4 (with the set track's): fewer than folds, said so.
    assert any("Blues (2)" in note and "Jazz (4)" in note for note in plan.notes), plan.notes
    few = plan_folds(_tracks({"Rock": list("aab"), "Jazz": list("cd")}), ["Jazz", "Rock"])
    assert few.k == 4 and "only 4 artists: 4 folds" in few.notes


def test_no_estimate_names_the_genre_its_artist_and_the_ways_out():
    tracks = _tracks({"Rock": list("aabb"), "Jazz": list("ccc")})
    assert estimate_problems(tracks, ["Jazz", "Rock"]) == ["Jazz: all 3 tracks by one artist (c)"]
    with pytest.raises(NoEstimate) as exc:
        plan_folds(tracks, ["Jazz", "Rock"])
    for part in ("Jazz: all 3 tracks by one artist (c)", "another artist", "--rollup", "--force"):
        assert part in str(exc.value)


def test_a_set_track_does_not_hurt_the_labels_outside_its_set():
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 4  # labels 0, 1, 2 apart in a 3-d embedding

    def windows(k: int) -> np.ndarray:
        return centres[k] + rng.normal(0, 1, (6, 3))

    singles = [windows(k % 3) for k in range(30)]
    targets: list = [k % 3 for k in range(30)]
    alone = fit_head(singles, targets, 3, c=1.0)
    # Ten tracks that sound like label 0 but are tagged {0, 1}: they may be either, never 2.
    sets = [windows(0) for _ in range(10)]
    both = fit_head(singles + sets, targets + [[0, 1]] * 10, 3, c=1.0)
    probe = np.concatenate([windows(2) for _ in range(20)])
    # Label 2's tracks are still label 2, as surely as without the set tracks.
    assert both.window_probabilities(probe)[:, 2].mean() >= alone.window_probabilities(probe)[:, 2].mean() - 0.02
    # The set tracks' sound goes to their set, not to label 2.
    p = both.window_probabilities(np.concatenate(sets))
    assert p[:, 2].mean() < 0.05 and p[:, :2].sum(axis=1).mean() > 0.95
    # A one-label set is that label: the same head as the plain index.
    same = fit_head(singles, [[t] for t in targets], 3, c=1.0)
    np.testing.assert_allclose(same.weights, alone.weights, atol=1e-6)


def test_beets_genre_tree_is_read_from_the_installed_package():
    tree = GenreTree.installed()
    assert tree.parent("Delta Blues") == "blues" and tree.parent("blues") is None
    assert tree.parent("Hip-Hop") is None and tree.depth("hip hop") == 0  # the tree's "hip hop"
    assert tree.depth("Chicago Blues") == 1 and tree.depth("No Such Genre") == -1


def test_rare_genres_roll_up_into_their_parents_until_they_have_enough():
    tree = GenreTree.installed()
    tracks = _tracks({
        "Delta Blues": list("abc"), "Chicago Blues": list("defg"), "Blues": list("hijkl"),
        "Rock": list("mnopqrstuv"), "Indie Rock; Synthpop": ["w"], "Polka Ska": ["x"],
    })  # fmt: skip
    rolled, merged = roll_up(tracks, tree, min_tracks=10)
    counts = {g: sum(g in t.genres for t in rolled) for g in {g for t in rolled for g in t.genres}}
    assert counts["Blues"] == 12 and counts["Rock"] == 11  # Indie Rock went up to Rock
    assert merged["Delta Blues"] == "Blues" and merged["Chicago Blues"] == "Blues" and merged["Indie Rock"] == "Rock"
    assert "Polka Ska" in counts  # not in the tree: left for select_labels
    before = {g: sum(g in t.genres for t in tracks) for t in tracks for g in t.genres}
    assert rollup_text(merged, before) == [
        "Blues <- Chicago Blues 4, Delta Blues 3",
        "Electronic <- Synthpop 1",
        "Rock <- Indie Rock 1",
    ]  # fmt: skip  (beets files Synthpop under Electronic Rock, Electronic)
    # With a vocabulary, every genre outside it climbs to the vocabulary's spelling of its ancestor.
    rolled, merged = roll_up(tracks, tree, min_tracks=1, vocabulary=["BLUES", "Rock"])
    assert {g for t in rolled for g in t.genres} >= {"BLUES", "Rock"} and "Delta Blues" not in merged.values()
    assert merged["Chicago Blues"] == "BLUES"


def test_vocabularies_meet_up_to_spelling_and_aliases():
    assert shared_label_indices(["hip hop", "rap", "World Music", "r&b", "Drone"], ["Hip-Hop", "R&B", "World"]) == {
        0: 0, 1: 0, 2: 2, 3: 1,
    }  # fmt: skip


SR = 22050


@pytest.fixture
def library_tracks(tmp_path) -> list[Track]:
    """18 files by 9 artists: low drones, high chimes, broadband hiss; one artist's drones also
    tagged Hiss (a set)."""
    rng = np.random.default_rng(0)
    out = []
    for kind in ("Drone", "Chime", "Hiss"):
        for a in range(3):
            for k in range(2):
                if kind == "Drone":
                    audio = tone(rng.uniform(90, 250), 3.0, SR)
                elif kind == "Chime":
                    audio = tone(rng.uniform(3000, 6000), 3.0, SR, amplitude=0.2)
                else:
                    audio = (0.1 * rng.standard_normal((3 * SR, 1))).astype(np.float32)
                path = write_audio(tmp_path / f"{kind}-{a}-{k}.flac", audio, SR)
                genres = ["Drone", "Hiss"] if (kind, a) == ("Drone", 2) else [kind]
                out.append(Track.with_genres(str(path), genres, f"artist-{kind} {a}", "beets"))
    return out


def test_the_estimate_is_cross_validated_and_the_model_trained_on_everything(library_tracks, tmp_path):
    base = build_tiny_backbone(tmp_path / "backbone.onnx", labels=("Drone", "Other"))
    options = RetrainOptions(base_model=str(base), workers=0, head_windows=3, head_c=1.0, version="1")
    lines: list[str] = []
    out = tmp_path / "mine.onnx"
    result = retrain_estimated(library_tracks, ["Chime", "Drone", "Hiss"], out, options, tmp_path / "cache",
                               log=lines.append)  # fmt: skip
    card = result.card
    estimate = card["estimate"]
    # 5 folds of 9 artists, each genre kept in every fold's training side although it has 3 or 4 artists.
    assert estimate["k"] == 5 and estimate["folds_evaluated"] == 5 and len(estimate["per_fold"]) == 5
    assert "Chime (3), Drone (3), Hiss (4)" in " ".join(estimate["notes"])
    m = estimate["metrics"]
    assert m["n_tracks"] == 18 and m["n_set_tracks"] == 2 and m["track_accuracy"] >= 0.8
    assert {c["support"] for c in m["per_class"].values()} == {6, 4}  # recall on single-label tracks
    assert estimate["comparison"]["shared_labels"] == ["Drone"] and estimate["comparison"]["n_tracks"] == 6
    assert card["trained_on"] == 18 and card["data"]["set_tracks"] == 2 and card["no_estimate"] is None
    assert json.loads(result.card_path.read_text())["estimate"]["metrics"]["confusion"] == m["confusion"]
    info = Classifier(out, device="cpu").info
    assert (
        info.metrics["track_accuracy"] == m["track_accuracy"] and "5-fold cross-validation" in info.metrics["protocol"]
    )
    assert any(line.startswith("fold 5/5: head on") for line in lines)
    text = "\n".join(estimate_lines(card))
    assert "estimate: 5-fold cross-validation over artists" in text and "on the 6 tracks in genres both" in text
    assert "trained on all 18 tracks by 9 artists (Chime 6, Drone 6, Hiss 8; 2 with several genres)" in text


def test_forced_without_an_estimate_the_card_says_so(library_tracks, tmp_path):
    tracks = [t for t in library_tracks if not (t.genres == ("Chime",) and not t.group.endswith("0"))]
    base = build_tiny_backbone(tmp_path / "backbone.onnx")
    options = RetrainOptions(base_model=str(base), workers=0, head_windows=3, version="1")
    with pytest.raises(NoEstimate, match=r"Chime: all 2 tracks by one artist \(Chime 0\)"):
        retrain_estimated(tracks, ["Chime", "Drone", "Hiss"], tmp_path / "m.onnx", options, tmp_path / "c", log=print)
    assert not (tmp_path / "m.onnx").exists()
    result = retrain_estimated(tracks, ["Chime", "Drone", "Hiss"], tmp_path / "m.onnx", options, tmp_path / "c",
                               force=True, log=print)  # fmt: skip
    assert result.card["estimate"] is None and "Chime: all 2 tracks" in result.card["no_estimate"]
    assert Classifier(tmp_path / "m.onnx", device="cpu").info.metrics["protocol"].startswith("no estimate (--force)")
    assert "without an estimate (--force)" in estimate_lines(result.card)[-2]


def test_the_estimate_and_the_rollup_import_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; import training.pipelines.retrain_library, training.pipelines.retrain_cv, "
        "training.pipelines.retrain_estimated, training.data.genre_tree; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
