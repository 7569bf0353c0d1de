"""The in-process `beet` of tests/beets_harness.py leaves beets' global state as it found it."""

from __future__ import annotations

import beets
import beets.plugins
from audio_factory import write_tone
from beets import logging as beets_logging
from beets_harness import Beets


def test_each_command_starts_fresh_and_leaves_no_plugin_config_or_handler_behind(tmp_path, tiny_model):
    sources = [dict(source) for source in beets.config.sources]
    handlers = list(beets_logging.getLogger("beets").handlers)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = Beets(tmp_path / "one", tiny_model)
    two = Beets(tmp_path / "two", tiny_model, count=2, min_confidence=0.0)
    for setup in (one, two):
        write_tone(setup.music / "low.flac", 200.0, seconds=3.0)
        setup.run("import", "-A", "-q", str(setup.music))
    # Each command reads its own set-up's settings: none carries over from the command before.
    for setup, verdict in ((one, "would be Low ("), (two, "would be Low; High ("), (one, "would be Low (")):
        assert verdict in setup.run("genreclass", "--pretend").stdout
    assert beets.plugins._instances == [] and not beets.plugins.BeetsPlugin.listeners
    assert [dict(source) for source in beets.config.sources] == sources
    assert beets_logging.getLogger("beets").handlers == handlers
