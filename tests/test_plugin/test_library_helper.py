"""The beets set-up of tests/helpers/library.py: each command starts as a new `beet` would, and
closing the set-up leaves beets' global state and the environment as it found them."""

from __future__ import annotations

import os
import sys

import beets
import beets.plugins
from beets import logging as beets_logging
from helpers.audio import write_tone
from helpers.library import BeetsLibrary, only_error


def test_each_command_starts_fresh_and_closing_leaves_no_plugin_config_handler_or_variable(tmp_path, tiny_model):
    sources = [dict(source) for source in beets.config.sources]
    handlers = list(beets_logging.getLogger("beets").handlers)
    environment, argv = dict(os.environ), list(sys.argv)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with BeetsLibrary(tmp_path / "one", tiny_model) as one, BeetsLibrary(tmp_path / "two", tiny_model) as two:
        two.settings["genreclass"].update(count=2, min_confidence=0.0)
        for setup in (one, two):
            write_tone(setup.music / "low.flac", 200.0, seconds=3.0)
            setup.run("import", "-A", "-q", str(setup.music))
        # Each command reads its own set-up's settings: none carries over from the command before.
        for setup, verdict in ((one, "would be Low ("), (two, "would be Low; High ("), (one, "would be Low (")):
            assert verdict in setup.run("genreclass", "--pretend").stdout
        # A setting changed between commands is read by the next one, and a UserError is its result.
        one.settings["genreclass"]["count"] = 0
        assert only_error(one.run("genreclass", check=False)) == "genreclass: 'count' must be at least 1, got 0"
        assert os.environ["BEETSDIR"] == str(tmp_path / "two") and sys.argv == argv
    assert beets.plugins._instances == [] and not beets.plugins.BeetsPlugin.listeners
    assert [dict(source) for source in beets.config.sources] == sources
    assert beets_logging.getLogger("beets").handlers == handlers
    assert dict(os.environ) == environment
