"""The plugin's small decisions, without audio: whose genres a track carries, why it is skipped,
what is judged together, and which settings are refused."""

from __future__ import annotations

import confuse
import pytest
from beets import config as beets_config
from beets import ui
from beets.library import Item, Library

from beetsplug.genreclass.settings import DEFAULTS, read_settings
from beetsplug.genreclass.tagger import skip_reason
from beetsplug.genreclass.units import group_units, user_tagged
from genre_model.provenance import Origin, genres_origin, learnable

MODEL = "tiny@2"


@pytest.fixture(autouse=True)
def beets_home(tmp_path, monkeypatch):
    """beets' configuration folder in the test's own folder, never the user's home."""
    monkeypatch.setenv("BEETSDIR", str(tmp_path))


def fields(genres=(), model=None, recorded=None, confidence=None) -> dict:
    out = {"genres": list(genres)}
    if model:
        out["genreclass_model"] = model
    if recorded is not None:
        out["genreclass_genres"] = list(recorded)
    if confidence is not None:
        out["genreclass_confidence"] = confidence
    return out


@pytest.mark.parametrize(
    ("state", "origin"),
    [
        (fields(), Origin.NONE),
        (fields(["Rock"]), Origin.USER),
        (fields(["Rock"], "tiny@1", ["Rock"]), Origin.GENRECLASS),
        (fields(["Rap"], "tiny@1", ["Hip-Hop"]), Origin.USER),
        (fields(["Hip-Hop", "Rock"], "tiny@1", ["Hip-Hop"]), Origin.USER),
        (fields([], "tiny@1", ["Hip-Hop"]), Origin.CLEARED),
        (fields(["Rock"], "tiny@1"), Origin.UNRECORDED),
        (fields([], "tiny@1", confidence=0.2), Origin.NONE),  # uncertain last time
        # A library opened without the plugin returns the record as beets stores it.
        (fields(["Rock", "Pop"], "tiny@1") | {"genreclass_genres": "Rock\\\u2400Pop"}, Origin.GENRECLASS),
    ],
)
def test_whose_genres_a_track_carries(state, origin):
    assert genres_origin(state) is origin
    assert learnable(state) is (origin is Origin.USER)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (fields(), None),
        (fields(["Rock"]), "already has genres (Rock)"),
        (fields(["Rap"], "tiny@1", ["Hip-Hop"]), "its genres were changed by hand (Rap; genreclass wrote Hip-Hop)"),
        (fields([], "tiny@1", ["Hip-Hop"]), "its genres were removed by hand (genreclass wrote Hip-Hop)"),
        (fields(["Rock"], "tiny@1"), "classified by an earlier genreclass that did not record its genres (Rock)"),
        (fields(["Rock"], "tiny@1", ["Rock"]), None),  # another model's verdict: a new model judges again
        (fields(["Rock"], MODEL, ["Rock"], confidence=0.8), f"already classified by {MODEL}"),
        # Uncertain, keeping an earlier model's genres: skipped too, until the threshold drops.
        (fields(["Rock"], MODEL, ["Rock"], confidence=0.2), "uncertain last time (0.200 < min_confidence 0.3)"),
        (fields([], MODEL, confidence=0.2), "uncertain last time (0.200 < min_confidence 0.3)"),
        (fields([], MODEL, confidence=0.35), None),  # the threshold was lowered below it
    ],
)
def test_why_a_track_is_skipped(state, reason):
    item = Item(**state)
    assert skip_reason(item, MODEL, 0.3) == reason
    assert user_tagged(item) is (genres_origin(state) in (Origin.USER, Origin.CLEARED, Origin.UNRECORDED))


@pytest.fixture
def lib(tmp_path) -> Library:
    library = Library(str(tmp_path / "library.db"))  # beets backs a database up beside it before migrating
    yield library
    library._close()


def add_album(lib: Library, artist: str, n: int, comp: bool = False) -> list[Item]:
    items = [
        Item(title=f"{artist} {i}", artist=artist, albumartist=artist, path=f"/{artist}/{i}.flac") for i in range(n)
    ]
    album = lib.add_album(items)
    album.comp = comp
    album.store()
    return items


def test_albums_are_judged_whole_and_compilations_and_singletons_per_track(lib):
    ann = add_album(lib, "Ann", 3)
    various = add_album(lib, "Various Artists", 2)
    mixtape = add_album(lib, "Mixtape", 2, comp=True)
    single = Item(title="alone", path="/alone.flac")
    lib.add(single)
    query = [ann[1], various[0], mixtape[1], single]
    units = group_units(query, "album")
    assert [(u.album is not None, [i.title for i in u.items]) for u in units] == [
        (True, ["Ann 0", "Ann 1", "Ann 2"]),  # one track of the album brings in the others
        (False, ["Various Artists 0"]),
        (False, ["Mixtape 1"]),
        (False, ["alone"]),
    ]
    assert units[0].items[1] is ann[1]  # the caller's object, whose file an import writes later
    assert [len(u.items) for u in group_units(query, "track")] == [1, 1, 1, 1]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("count", 0, "'count' must be at least 1, got 0"),
        ("min_confidence", 1.5, "'min_confidence' must be between 0 and 1, got 1.5"),
        ("workers", -1, "'workers' must be 'auto' or a number >= 0, got -1"),
        ("source", "artist", "source"),
        ("map", ["Rock"], "'map' must be a mapping of model labels to genres"),
        ("model", "/nonexistent/model.onnx", "model file not found"),
        ("device", "tpu", "device"),
    ],
)
def test_bad_settings_are_refused_with_the_key_named(key, value, message):
    view = confuse.Configuration("genreclass-test", read=False)
    view.add(DEFAULTS)
    view[key] = value
    with pytest.raises(ui.UserError, match="genreclass: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        read_settings(view)


def test_good_settings_are_read_typed():
    view = confuse.Configuration("genreclass-test", read=False)
    view.add(DEFAULTS)
    view.set({"count": 2, "workers": 0, "map": {"Hip-Hop": "Rap", "Pop": None}, "model": "fast"})
    settings = read_settings(view)
    assert (settings.count, settings.workers, settings.source) == (2, 0, "album")
    assert settings.rename == {"Hip-Hop": "Rap", "Pop": ""}
    assert settings.model.endswith("genreclass-fast.onnx")
    assert beets_config["va_name"].as_str() == "Various Artists"


def test_a_misspelt_setting_is_named_with_the_setting_it_resembles():
    from beetsplug.genreclass.settings import unknown_keys

    view = confuse.Configuration("genreclass-test", read=False)
    view.add(DEFAULTS)
    view.set({"min_confidance": 0.5, "colour": "blue"})
    assert unknown_keys(view) == [
        "'colour' is no genreclass setting; it is ignored",
        "'min_confidance' is no genreclass setting (did you mean 'min_confidence'?); it is ignored",
    ]
