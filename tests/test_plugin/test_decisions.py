"""The plugin's small decisions, without audio: whose genres a track carries, why it is skipped,
what is judged together, and which settings are read how or refused with which line."""

from __future__ import annotations

import os

import confuse
import pytest
from beets import ui
from beets.library import Item

from beetsplug.genreclass.settings import (
    DEFAULTS,
    check_rename,
    genreclass_dir,
    installed_model_path,
    read_settings,
    setting_error,
    unknown_keys,
)
from beetsplug.genreclass.tagger import skip_reason
from beetsplug.genreclass.units import group_units, user_tagged
from genre_model import bundled_model_path
from genre_model.provenance import Origin, genres_origin, learnable, users_genres, with_verdict

MODEL = "tiny@2"


@pytest.fixture(autouse=True)
def beets_home(tmp_path, monkeypatch):
    """beets' configuration folder (where an installed model lives) in the test's own folder."""
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


# -- whose genres, and why a track is skipped ----------------------------------------------------


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
        # keep_existing: the user's genres, then what genreclass added after them.
        (fields(["Jazz", "Rock"], "tiny@1", ["Rock"]), Origin.KEPT),
        (fields(["Jazz", "Blues", "Rock", "Pop"], "tiny@1", ["Rock", "Pop"]), Origin.KEPT),
        (fields(["Jazz"], "tiny@1", []), Origin.USER),  # kept, and genreclass had nothing to add
        (fields(["Rock", "Jazz"], "tiny@1", ["Rock"]), Origin.USER),  # added to by hand after it
    ],
)
def test_whose_genres_a_track_carries(state, origin):
    assert genres_origin(state) is origin
    assert learnable(state) is (origin in (Origin.USER, Origin.KEPT))


def test_a_kept_track_teaches_only_its_users_genres():
    assert users_genres(fields(["Jazz", "Blues", "Rock"], "tiny@1", ["Rock"])) == ["Jazz", "Blues"]
    assert users_genres(fields(["Rap"], "tiny@1", ["Hip-Hop"])) == ["Rap"]
    assert users_genres(fields(["Rock"], "tiny@1", ["Rock"])) == []  # genreclass's own guess


@pytest.mark.parametrize(
    ("state", "keep", "result"),
    [
        (fields(), True, (["Rock"], ["Rock"])),
        (fields(["Jazz"]), True, (["Jazz", "Rock"], ["Rock"])),  # the user's stay first
        (fields(["Jazz"]), False, (["Rock"], ["Rock"])),  # forced without keep_existing: replaced
        (fields(["Rock"]), True, (["Rock"], [])),  # nothing to add: nothing is genreclass's
        (fields(["Jazz", "Pop"], "tiny@1", ["Pop"]), True, (["Jazz", "Rock"], ["Rock"])),  # only its own part goes
        (fields(["Jazz", "Pop"], "tiny@1", ["Pop"]), False, (["Rock"], ["Rock"])),
        (fields(["Pop"], "tiny@1", ["Pop"]), True, (["Rock"], ["Rock"])),  # its own: replaced
        (fields(["Rap"], "tiny@1", ["Hip-Hop"]), True, (["Rap", "Rock"], ["Rock"])),  # a correction stays
        (fields([], "tiny@1", ["Pop"]), True, (["Rock"], ["Rock"])),  # removed by hand (forced)
        (fields(["Pop"], "tiny@1"), True, (["Pop", "Rock"], ["Rock"])),  # unrecorded: may be the user's
    ],
)
def test_a_verdict_keeps_the_genres_that_are_not_genreclass_s_when_asked(state, keep, result):
    assert with_verdict(state, ["Rock"], keep_others=keep) == result
    genres, ours = result
    after = fields(genres, "tiny@2", ours)
    assert users_genres(after) == [g for g in genres if g not in ours]  # a later run tells them apart


@pytest.mark.parametrize(
    ("state", "reason", "users"),
    [
        (fields(), None, False),
        (fields(["Rock"]), "already has genres (Rock)", True),
        (fields(["Hip-Hop", "Rock"]), "already has genres (Hip-Hop; Rock)", True),
        (
            fields(["Rap"], "tiny@1", ["Hip-Hop"]),
            "its genres were changed by hand (Rap; genreclass wrote Hip-Hop)",
            True,
        ),
        (fields([], "tiny@1", ["Hip-Hop"]), "its genres were removed by hand (genreclass wrote Hip-Hop)", True),
        (fields(["Rock"], "tiny@1"), "classified by an earlier genreclass that did not record its genres (Rock)", True),
        (fields(["Rock"], "tiny@1", ["Rock"]), None, False),  # another model's verdict: a new model judges again
        (fields(["Rock"], MODEL, ["Rock"], confidence=0.8), f"already classified by {MODEL}", False),
        (
            fields(["Rock"], MODEL, ["Rock"], confidence=0.3),
            f"already classified by {MODEL}",
            False,
        ),  # at the threshold
        # Sure, but it wrote nothing (`map` dropped its labels): judged again, perhaps under a new map.
        (fields([], MODEL, [], confidence=0.8), None, False),
        # Uncertain, keeping an earlier model's genres: skipped too, until the threshold drops.
        (fields(["Rock"], MODEL, ["Rock"], confidence=0.2), "uncertain last time (0.200 < min_confidence 0.3)", False),
        (fields([], MODEL, confidence=0.2), "uncertain last time (0.200 < min_confidence 0.3)", False),
        (fields([], MODEL), "uncertain last time (0.000 < min_confidence 0.3)", False),  # no confidence stored
        (fields([], MODEL, confidence=0.35), None, False),  # the threshold was lowered below it
        (fields(["Jazz", "Rock"], MODEL, ["Rock"], confidence=0.8), f"already classified by {MODEL}", False),
        (fields(["Jazz", "Rock"], "tiny@1", ["Rock"]), None, False),  # a new model replaces its part only
        (fields(["Jazz"], MODEL, [], confidence=0.8), "already has genres (Jazz)", True),  # nothing added
    ],
)
def test_why_a_track_is_skipped_and_whether_its_genres_are_the_users(state, reason, users):
    item = Item(**state)
    assert skip_reason(item, MODEL, 0.3) == reason
    assert user_tagged(item) is users


def test_an_uncertain_track_without_genres_is_judged_again_once_a_fallback_is_set():
    uncertain = Item(**fields([], MODEL, confidence=0.2))
    assert skip_reason(uncertain, MODEL, 0.3, fallback="Unknown") is None
    given = Item(**fields(["Unknown"], MODEL, ["Unknown"], confidence=0.2))  # it has it: skipped
    assert skip_reason(given, MODEL, 0.3, fallback="Unknown").startswith("uncertain last time")


def test_with_no_threshold_a_verdict_without_confidence_counts_as_done():
    assert skip_reason(Item(**fields(["Rock"], MODEL, ["Rock"])), MODEL, 0.0) == f"already classified by {MODEL}"


# -- what is judged together ---------------------------------------------------------------------


@pytest.fixture
def helper(make_library):
    """beets' `TestHelper` (here `BeetsLibrary`): its library, and `create_item` to fill it."""
    return make_library()


def add_album(helper, artist: str, n: int, comp: bool = False, album: str | None = None) -> list[Item]:
    items = [
        helper.create_item(title=f"{artist} {i}", artist=artist, albumartist=artist, album=album or artist)
        for i in range(n)
    ]
    added = helper.lib.add_album(items)
    added.comp = comp
    added.store()
    return items


def titles(units) -> list[tuple[bool, list[str]]]:
    return [(u.kind == "album", [i.title for i in u.items]) for u in units]


def test_albums_are_judged_whole_and_compilations_and_singletons_per_track(helper):
    ann = add_album(helper, "Ann", 3)
    various = add_album(helper, "Various Artists", 2)
    mixtape = add_album(helper, "Mixtape", 2, comp=True)
    single = helper.add_item(title="alone")
    query = [ann[1], various[0], mixtape[1], single]
    units = group_units(query, "album")
    assert titles(units) == [
        (True, ["Ann 0", "Ann 1", "Ann 2"]),  # one track of the album brings in the others
        (False, ["Various Artists 0"]),
        (False, ["Mixtape 1"]),
        (False, ["alone"]),
    ]
    assert units[0].items[1] is ann[1]  # the caller's object, whose file an import writes later
    assert units[0].items[0] is not ann[0]  # not asked for: read from the library
    assert [len(u.items) for u in group_units(query, "track")] == [1, 1, 1, 1]


def test_an_album_asked_for_twice_is_one_unit_in_first_seen_order_with_every_given_item(helper):
    ann, bob = add_album(helper, "Ann", 2), add_album(helper, "Bob", 2)
    units = group_units([bob[1], ann[0], bob[0], ann[1]], "album")
    assert titles(units) == [(True, ["Bob 0", "Bob 1"]), (True, ["Ann 0", "Ann 1"])]
    assert units[0].items[0] is bob[0] and units[0].items[1] is bob[1] and units[1].items[1] is ann[1]
    assert group_units([], "album") == []


def test_the_compilation_name_is_beets_va_name_and_a_lost_album_leaves_its_tracks_alone(helper):
    helper.config["va_name"] = "Diverse"
    diverse = add_album(helper, "Diverse", 2)
    various = add_album(helper, "Various Artists", 2)  # an ordinary album artist now
    assert titles(group_units([diverse[0], various[0]], "album")) == [
        (False, ["Diverse 0"]),
        (True, ["Various Artists 0", "Various Artists 1"]),
    ]
    orphan = add_album(helper, "Orphan", 2)
    orphan[0].get_album().remove(with_items=False)  # the items keep their album_id
    assert titles(group_units([orphan[0]], "album")) == [(False, ["Orphan 0"])]


def test_by_artist_the_given_tracks_of_one_artist_are_one_unit(helper):
    deep = add_album(helper, "Ann", 2, album="Deep")
    bright = add_album(helper, "Ann", 2, album="Bright")
    mix = add_album(helper, "Mixtape", 2, comp=True)  # track artist "Mixtape"; its tracks' own artists below
    mix[0].artist, mix[1].artist = "ann", "Cid"  # "ann" is Ann: names are compared case-folded
    for item in mix:
        item.store()
    single = helper.add_item(title="single", artist="Bob")
    nobody = helper.add_item(title="nobody", artist="")
    units = group_units([deep[0], deep[1], bright[0], mix[0], mix[1], single, nobody], "artist")
    assert [(u.kind, u.name, [i.title for i in u.items]) for u in units] == [
        ("artist", "Ann (artist)", ["Ann 0", "Ann 1", "Ann 0", "Mixtape 0"]),  # Bright's other track not pulled in
        ("artist", "Cid (artist)", ["Mixtape 1"]),
        ("artist", "Bob (artist)", ["single"]),
        (None, "", ["nobody"]),  # no artist: judged alone
    ]
    # An album follows its artist's verdict only when all its tracks are in the unit.
    assert [album.album for album in units[0].albums] == ["Deep"]
    assert units[0].albums[0].id == deep[0].album_id and units[1].albums == []
    assert units[0].key == units[0].key and units[0].key != units[1].key


def test_an_albums_verdict_record_does_not_make_its_other_tracks_look_corrected(helper):
    """beets' Item.get falls back to the album's fields: a track the album's verdict did not reach
    (it could not be decoded) must not read as one whose genres were removed by hand."""
    tracks = add_album(helper, "Ann", 2)
    album = tracks[0].get_album()
    album.update({"genres": ["Low"], "genreclass_model": MODEL, "genreclass_genres": "Low"})  # as stored
    album.store(inherit=False)
    fresh = helper.lib.get_item(tracks[1].id)
    assert fresh.get("genreclass_model") == MODEL  # what beets shows: the album's
    assert not user_tagged(fresh) and skip_reason(fresh, MODEL, 0.3) is None


# -- settings ----------------------------------------------------------------------------------


def settings_view(**values) -> confuse.ConfigView:
    """The plugin's view (``genreclass:`` of a configuration, under its defaults) set to `values`."""
    root = confuse.Configuration("genreclass-test", read=False)
    root["genreclass"].add(DEFAULTS)
    root["genreclass"].set(values)
    return root["genreclass"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("count", 0, "'count' must be at least 1, got 0"),
        ("max_windows", 0, "'max_windows' must be at least 1, got 0"),
        ("batch_size", -2, "'batch_size' must be at least 1, got -2"),
        ("max_windows", "eight", "'max_windows' must be a number"),
        ("min_confidence", 1.5, "'min_confidence' must be between 0 and 1, got 1.5"),
        ("min_confidence", -0.1, "'min_confidence' must be between 0 and 1, got -0.1"),
        ("min_confidence", "high", "'min_confidence' must be numeric, not str"),
        ("workers", -1, "'workers' must be 'auto' or a number >= 0, got -1"),
        ("workers", True, "'workers' must be 'auto' or a number >= 0, got True"),  # a bool is no count
        ("workers", "many", "'workers' must be 'auto' or a number >= 0, got 'many'"),
        ("source", "artists", "'source' must be one of ['album', 'artist', 'track'], not 'artists'"),
        ("vote", "loudest", "'vote' must be one of ['mean', 'majority'], not 'loudest'"),
        ("device", "tpu", "'device' must be one of ['auto', 'cpu', 'cuda'], not 'tpu'"),
        ("auto", "sometimes", "'auto' must be a bool, not str"),
        ("map", ["Rock"], "'map' must be a mapping of model labels to genres, got ['Rock']"),
        ("map", {"Rock": ["a", "b"]}, "'map': Rock must map to a genre name or nothing, got ['a', 'b']"),
        ("fallback", ["Rock", "Pop"], "'fallback' must be one genre name or empty, got ['Rock', 'Pop']"),
        ("fallback", True, "'fallback' must be one genre name or empty, got True"),
        ("keep_existing", "sometimes", "'keep_existing' must be a bool, not str"),
        ("model", "/nonexistent/model.onnx", "model file not found: /nonexistent/model.onnx"),
    ],
)
def test_bad_settings_are_refused_in_one_line_naming_the_key_after_one_prefix(key, value, message):
    with pytest.raises(ui.UserError) as refused:
        read_settings(settings_view(**{key: value}))
    assert str(refused.value) == f"genreclass: {message}"


def test_good_settings_are_read_typed():
    settings = read_settings(
        settings_view(count=2, workers=0, map={"Hip-Hop": " Rap ", "Pop": None, "Rock": "", "Disco": 70}, model="fast")
    )
    assert (settings.count, settings.workers, settings.source, settings.min_confidence) == (2, 0, "album", 0.6)
    assert settings.rename == {"Hip-Hop": "Rap", "Pop": "", "Rock": "", "Disco": "70"}  # "" and null: never written
    assert settings.model == str(bundled_model_path("fast"))
    assert read_settings(settings_view(workers="auto")).workers == len(os.sched_getaffinity(0))
    assert read_settings(settings_view(map=None)).rename == {}
    assert (settings.fallback, settings.keep_existing) == ("", False)  # as today: nothing written, replaced
    kept = read_settings(settings_view(fallback=" Unknown ", keep_existing=True))
    assert (kept.fallback, kept.keep_existing) == ("Unknown", True)
    assert read_settings(settings_view(fallback=None)).fallback == ""


def test_no_model_setting_means_the_installed_model_else_the_bundled_default(tmp_path):
    assert genreclass_dir() == str(tmp_path / "genreclass")  # beside beets' own config (BEETSDIR)
    assert read_settings(settings_view()).model is None  # the bundled default
    os.makedirs(genreclass_dir())
    with open(installed_model_path(), "wb") as f:
        f.write(b"an installed model")
    assert read_settings(settings_view()).model == installed_model_path()
    assert read_settings(settings_view(model="default")).model == str(bundled_model_path("default"))


def test_a_model_path_that_is_no_regular_file_is_refused_without_opening_it(tmp_path):
    with pytest.raises(ui.UserError, match=r"^genreclass: 'model' is a folder \("):
        read_settings(settings_view(model=str(tmp_path)))
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    with pytest.raises(ui.UserError, match=r"^genreclass: 'model' is not a regular file \("):
        read_settings(settings_view(model=str(fifo)))


def test_a_configuration_error_elsewhere_keeps_its_own_key():
    error = confuse.ConfigTypeError("import.copy: must be a bool")
    assert str(setting_error(error)) == "genreclass: import.copy: must be a bool"


def test_map_keys_must_be_the_models_labels():
    check_rename({"Rock": "Rawk"}, ("Rock", "Pop"))  # known: no error
    with pytest.raises(
        ui.UserError, match=r"^genreclass: 'map' has a key the model does not know: Rokc; its labels are Rock, Pop$"
    ):
        check_rename({"Rokc": "Rock"}, ("Rock", "Pop"))
    with pytest.raises(ui.UserError, match=r"has keys the model does not know: Jazz, Rokc;"):
        check_rename({"Rokc": "Rock", "Jazz": "", "Pop": "Pop"}, ("Rock", "Pop"))


def test_a_misspelt_setting_is_named_with_the_setting_it_resembles():
    assert unknown_keys(settings_view(min_confidance=0.5, colour="blue")) == [
        "'colour' is no genreclass setting; it is ignored",
        "'min_confidance' is no genreclass setting (did you mean 'min_confidence'?); it is ignored",
    ]
    assert unknown_keys(settings_view(count=2, fallback="Unknown", keep_existing=True)) == []
    assert unknown_keys(settings_view(keep_exisiting=True)) == [
        "'keep_exisiting' is no genreclass setting (did you mean 'keep_existing'?); it is ignored"
    ]


def test_the_default_models_card_holds_the_written_genres_precision():
    # What the default min_confidence was chosen from: the written genre's precision and coverage.
    from beetsplug.genreclass.settings import DEFAULTS
    from genre_model import Classifier

    written = {row["min_confidence"]: row for row in Classifier().info.metrics["written"]["all"]}
    assert written[DEFAULTS["min_confidence"]]["precision"] >= 0.9
