"""Group-aware splits and the leak check."""

from __future__ import annotations

import shutil

import pytest

from training.data.splits import SplitLeakError, check_disjoint, group_holdout, group_kfold
from training.data.tracks import Track
from training.features.cache import file_digest


def make_tracks(n_groups: int = 12, per_group: int = 3) -> list[Track]:
    return [
        Track(f"/x/{g}-{i}.mp3", ["A", "B", "C"][g % 3], f"artist{g}", "s")
        for g in range(n_groups)
        for i in range(per_group)
    ]


def test_group_kfold_keeps_groups_whole_and_spreads_labels():
    tracks = make_tracks()
    folds = group_kfold(tracks, 3, seed=1)
    for g in {t.group for t in tracks}:
        assert len({f for t, f in zip(tracks, folds, strict=True) if t.group == g}) == 1
    for f in range(3):
        labels = [t.label for t, fold in zip(tracks, folds, strict=True) if fold == f]
        assert sorted(set(labels)) == ["A", "B", "C"]


def test_group_holdout_uses_given_split_else_groups():
    tracks = make_tracks()
    train, valid = group_holdout(tracks, 0.25)
    assert {t.group for t in train}.isdisjoint({t.group for t in valid})
    assert 6 <= len(valid) <= 12
    given = [Track(f"/y/{i}", "A", "g", "s", "train" if i < 3 else "valid") for i in range(5)]
    train, valid = group_holdout(given)
    assert len(train) == 3 and len(valid) == 2


def test_leak_check_refuses_shared_group_and_shared_audio(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    a.write_bytes(b"RIFF-same-audio")
    shutil.copy(a, b)
    c = tmp_path / "c.wav"
    c.write_bytes(b"RIFF-other")
    with pytest.raises(SplitLeakError, match="groups on both sides"):
        check_disjoint([Track(str(a), "A", "g1", "s")], [Track(str(c), "A", "g1", "s")], file_digest)
    with pytest.raises(SplitLeakError, match="same audio"):
        check_disjoint([Track(str(a), "A", "g1", "s")], [Track(str(b), "A", "g2", "s")], file_digest)
    check_disjoint([Track(str(a), "A", "g1", "s")], [Track(str(c), "A", "g2", "s")], file_digest)
