"""Dataset loaders on small generated fixtures in each layout."""

from __future__ import annotations

import csv
import os

import pytest
from helpers.audio import write_tone

from training.data.genres import canonical_genre
from training.data.tracks import DatasetError, load_beets, load_data, load_fma, load_folder, load_gtzan, load_manifest


def test_folder_layout(genre_folder):
    tracks = load_folder(genre_folder)
    assert len(tracks) == 24
    assert {t.label for t in tracks} == {"Tone", "Noise", "Clicks"}
    assert len({t.group for t in tracks}) == 24
    assert load_data(str(genre_folder)) == tracks


def test_gtzan_layout_with_filtered_lists(tmp_path):
    for genre in ("blues", "hiphop"):
        (tmp_path / genre).mkdir()
        for i in range(3):
            write_tone(tmp_path / genre / f"{genre}.0000{i}.wav", 300, seconds=1.0)
    (tmp_path / "train_filtered.txt").write_text(
        "blues/blues.00000.wav\nhiphop/hiphop.00000.wav\nhiphop/hiphop.00001.wav\n"
    )
    (tmp_path / "valid_filtered.txt").write_text("blues/blues.00001.wav\n")
    tracks = load_gtzan(tmp_path)
    assert sorted((os.path.basename(t.path), t.label, t.split, t.group) for t in tracks) == [
        ("blues.00000.wav", "Blues", "train", "gtzan-train"),
        ("blues.00001.wav", "Blues", "valid", "gtzan-valid"),
        ("hiphop.00000.wav", "Hip-Hop", "train", "gtzan-train"),
        ("hiphop.00001.wav", "Hip-Hop", "train", "gtzan-train"),
    ]
    assert len(load_data(f"gtzan:{tmp_path}")) == 4


def test_fma_tracks_csv_with_its_three_header_rows(tmp_path):
    audio = tmp_path / "fma_small"
    for tid in (2, 5, 140):
        name = f"{tid:06d}"
        (audio / name[:3]).mkdir(parents=True, exist_ok=True)
        write_tone(audio / name[:3] / f"{name}.mp3", 440, seconds=1.0)
    csv_path = tmp_path / "tracks.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", "album", "artist", "set", "set", "track", "track"])
        w.writerow(["", "id", "id", "split", "subset", "genre_top", "title"])
        w.writerow(["track_id", "", "", "", "", "", ""])
        w.writerow([2, 1, 10, "training", "small", "Hip-Hop", "a"])
        w.writerow([3, 1, 10, "training", "small", "Hip-Hop", "no audio"])
        w.writerow([5, 2, 11, "validation", "medium", "Rock", "b"])
        w.writerow([140, 3, 12, "test", "small", "", "no top genre"])
    tracks = load_fma(audio, csv_path)
    assert [(os.path.basename(t.path), t.label, t.split, t.group) for t in tracks] == [
        ("000002.mp3", "Hip-Hop", "train", "fma-artist-10"),
        ("000005.mp3", "Rock", "valid", "fma-artist-11"),
    ]
    assert len(load_fma(audio, csv_path, subset="small")) == 1
    assert len(load_data(f"fma:{audio}:{csv_path}")) == 2
    with pytest.raises(DatasetError, match="tracks.csv not found"):
        load_fma(audio, tmp_path / "nope.csv")


def test_manifest_paths_are_relative_to_the_csv(tmp_path):
    (tmp_path / "a").mkdir()
    write_tone(tmp_path / "a" / "x.flac", 440, seconds=1.0)
    (tmp_path / "m.csv").write_text("path,label,group,split,dataset\na/x.flac,hip hop,artist1,train,mine\n")
    (t,) = load_manifest(tmp_path / "m.csv")
    assert (t.path, t.label, t.group, t.split, t.source) == (
        str(tmp_path / "a" / "x.flac"),
        "Hip-Hop",
        "artist1",
        "train",
        "mine",
    )
    (tmp_path / "bad.csv").write_text("file,genre\n")
    with pytest.raises(DatasetError, match="'path' and 'label' or 'genres'"):
        load_manifest(tmp_path / "bad.csv")


def test_beets_library_items_with_genres(tmp_path):
    from beets.library import Item, Library

    lib = Library(str(tmp_path / "lib.db"), str(tmp_path))
    rows = [(["rap"], "A", None), (["Rock", "Pop"], "B", None), ([], "C", None), (["Jazz"], "D", "genreclass@1")]
    for i, (genres, artist, model) in enumerate(rows):
        path = write_tone(tmp_path / f"t{i}.mp3", 300, seconds=1.0)
        item = Item.from_path(str(path))
        item.genres, item.albumartist = genres, artist
        if model:
            item.genreclass_model = model  # genres the plugin guessed: not training data
        lib.add(item)
    # keep_existing: the user's Blues, then the Jazz genreclass added; only Blues teaches.
    kept = Item.from_path(str(write_tone(tmp_path / "kept.mp3", 300, seconds=1.0)))
    kept.update({"genres": ["Blues", "Jazz"], "albumartist": "E", "genreclass_model": "genreclass@1"})
    kept["genreclass_genres"] = "Jazz"  # as beets stores a list, read without the plugin's field types
    lib.add(kept)
    tracks, left_out = load_beets(lib)
    # An item's genres are the set it may carry, not its first one.
    assert sorted((t.genres, t.group) for t in tracks) == [
        (("Blues",), "artist-E"),
        (("Hip-Hop",), "artist-A"),
        (("Pop", "Rock"), "artist-B"),
    ]
    assert left_out == {"no genres": 1, "genres set by genreclass": 1}
    # With a vocabulary, the genres in it (spelt as it spells them); an item with none keeps its own.
    tracks, _ = load_beets(lib, vocabulary=["POP", "Hip-Hop"], include_predicted=True)
    assert sorted(t.genres for t in tracks) == [("Blues", "Jazz"), ("Hip-Hop",), ("Jazz",), ("POP",)]
    tracks, _ = load_beets(lib, spellings=["ROCK"])  # a known label's spelling wins
    assert sorted(t.label for t in tracks) == ["Blues", "Hip-Hop", "Pop; ROCK"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("hip hop", "Hip-Hop"),
        ("HipHop", "Hip-Hop"),
        ("Rap", "Hip-Hop"),
        ("rock", "Rock"),
        ("R&B", "R&B"),
        ("post-rock", "Post-Rock"),
    ],
)
def test_canonical_genre(raw, expected):
    assert canonical_genre(raw) == expected


def test_canonical_genre_vocabulary_and_aliases():
    assert canonical_genre("ELECTRONIC", vocabulary=["Electronic"]) == "Electronic"
    assert canonical_genre("synthwave", aliases={"Synth Wave": "Electronic"}) == "Electronic"


def test_beets_groups_compilations_by_track_artist(tmp_path):
    from beets.library import Item, Library

    lib = Library(str(tmp_path / "lib.db"), str(tmp_path))
    # (albumartist, artist, comp, album): the group is the album artist, except on compilations.
    rows = [
        ("Ann", "Ann feat. Bo", False, "Solo"),
        ("Various Artists", "Cy", False, "Sampler"),  # va_name: a compilation even without comp
        ("Mix Series", "Di", True, "Mix 1"),
        ("Mix Series", "", True, "Mix 1"),  # no track artist on a compilation: its album
        ("", "", False, ""),  # nothing at all: its folder
    ]
    for i, (albumartist, artist, comp, album) in enumerate(rows):
        item = Item.from_path(str(write_tone(tmp_path / f"t{i}.flac", 300, seconds=1.0)))
        item.update({"genres": ["Rock"], "albumartist": albumartist, "artist": artist, "comp": comp, "album": album})
        lib.add(item)
    tracks, _ = load_beets(lib)
    assert [t.group for t in sorted(tracks, key=lambda t: t.path)] == [
        "artist-Ann", "artist-Cy", "artist-Di", "artist-album Mix 1", f"artist-{tmp_path}",
    ]  # fmt: skip


def test_a_data_argument_of_no_known_kind_names_the_kinds(tmp_path):
    with pytest.raises(DatasetError, match=r"not a folder, manifest \.csv, gtzan:PATH, fma:AUDIO_DIR:TRACKS_CSV"):
        load_data(str(tmp_path / "nothing-here"))
    with pytest.raises(DatasetError, match="expected fma:AUDIO_DIR:TRACKS_CSV"):
        load_data("fma:only-one-part")
