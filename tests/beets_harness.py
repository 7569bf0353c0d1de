"""A throw-away beets set-up whose commands run in the test process, and tag readers.

`Beets.run` calls `beets.ui.main`, the function behind the installed `beet` script, with the
global state a new `beet` process would start from: the configuration read afresh from the
set-up's config.yaml, no plugin loaded yet, Item's plugin field types forgotten, a new log
handler on this command's stderr. Afterwards that state is put back as it was, the plugins
are unloaded and the library closed; a command that failed is sent ``cli_exit`` as well, which
a real process would have ended, so no decoder process outlives it. This is what beets' own
`beets.test.helper` does (`PluginMixin.unload_plugins`, `RunMixin.run_command`, its conftest's
`cached_classproperty.cache.clear()`), with two differences: the command goes through `main`
rather than `_raw_main`, so a `UserError` gives exit status 1 and one "error:" line on stderr as
it does for a user, and the configuration is the user's file rather than helper overlays.

`Beets.run_process` runs the installed `beet` in a process of its own, for what needs one:
signals, hidden packages, the entry point itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import multiprocessing
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import beets
import beets.plugins
import beets.ui
import mutagen
import yaml
from beets import logging as beets_logging
from beets.util import cached_classproperty

BEET = str(Path(sys.executable).with_name("beet"))


def genres_in_file(path: Path) -> list[str]:
    """The genre tag as stored in the file (ID3 TCON, Vorbis/FLAC GENRE), read with mutagen."""
    f = mutagen.File(path)
    if f is None or f.tags is None:
        return []
    if "TCON" in f.tags:
        return list(f.tags["TCON"].text)
    return list(f.tags.get("genre", []) or f.tags.get("GENRE", []))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Result:
    """What a `beet` command left: its exit status and its output, as a process would."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def _stream() -> io.TextIOWrapper:
    # A text stream with a byte buffer, like a pipe: `ui.print_` writes to `sys.stdout.buffer`.
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8")


def _unload_plugins() -> None:
    """Forget every plugin instance and listener (as `beets.test.helper.PluginMixin` does), and
    the field types Item and Album cached from them."""
    beets.plugins.BeetsPlugin.listeners.clear()
    beets.plugins.BeetsPlugin._raw_listeners.clear()
    beets.plugins._instances.clear()
    cached_classproperty.cache.clear()


@contextlib.contextmanager
def _as_a_new_process(root: Path, args: tuple[str, ...]) -> Iterator[list]:
    """beets' global state as a new `beet` process with BEETSDIR=`root` finds it, restored after.

    Yields the list of libraries the command opened.
    """
    config = beets.config
    saved_config = (list(config.sources), config._materialized, config._lazy_prefix, config._lazy_suffix)
    log = beets_logging.getLogger("beets")
    saved_log = (list(log.handlers), log.level, getattr(log, "default_level", None))
    opened: list = []
    real_open = beets.ui._open_library

    def open_library(cfg):
        lib = real_open(cfg)
        opened.append(lib)
        return lib

    config.clear()
    config._materialized = False  # read config.yaml on first use, as a new process does
    _unload_plugins()
    log.handlers = []  # `main` adds a handler on the current sys.stderr when there is none
    try:
        with (
            mock.patch.dict(os.environ, {"BEETSDIR": str(root)}),
            mock.patch.object(sys, "argv", ["beet", *args]),
            mock.patch.object(sys, "stdin", io.StringIO("")),  # a prompt would end the command
            mock.patch.object(beets.ui, "_open_library", open_library),
        ):
            yield opened
    finally:
        for lib in opened:
            lib._close()
        _unload_plugins()
        config.clear()
        config.sources[:], config._materialized, config._lazy_prefix, config._lazy_suffix = saved_config
        log.handlers, level, default_level = saved_log
        log.setLevel(level)
        if default_level is not None:
            log.default_level = default_level


class Beets:
    """A throw-away beets set-up: config folder, library and music folder under tmp_path."""

    def __init__(self, root: Path, model: Path, **plugin_config) -> None:
        self.root = root
        self.music = root / "music"
        self.music.mkdir()
        self.config = {
            "directory": str(root / "library"),
            "library": str(root / "library.db"),
            "plugins": ["genreclass"],
            "create_backup_before_migrations": False,
            "import": {"copy": False, "write": True, "resume": False, "incremental": False, "duplicate_action": "keep"},
            # Per track unless a test asks for albums: most tests import one folder of unrelated tones.
            "genreclass": {"model": str(model), "workers": 0, "max_windows": 3, "source": "track", **plugin_config},
        }
        self.write_config()

    def write_config(self) -> None:
        (self.root / "config.yaml").write_text(yaml.safe_dump(self.config))

    def run(self, *args: str, check: bool = True) -> Result:
        """``beet ARGS`` in this process; an exception `main` does not handle propagates."""
        stdout, stderr = _stream(), _stream()
        returncode = 0
        with _as_a_new_process(self.root, args) as opened:
            try:
                with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                    beets.ui.main(list(args))
            except SystemExit as exc:  # `main` exits 1 after logging a UserError; --help exits 0
                returncode = exc.code if isinstance(exc.code, int) else 1
            if returncode != 0 and opened:
                # A process would end here, and its decoder processes with it.
                beets.plugins.send("cli_exit", lib=opened[0])
            leftover = multiprocessing.active_children()
        result = Result(args, returncode, _text(stdout), _text(stderr))
        assert not leftover, f"beet {' '.join(args)} left processes running: {leftover}"
        if check and returncode != 0:
            raise AssertionError(f"beet {' '.join(args)} failed ({returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def process_env(self, env: dict[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, "BEETSDIR": str(self.root), **(env or {})}

    def run_process(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> Result:
        """``beet ARGS`` run by the installed `beet` script in a new process."""
        proc = subprocess.run([BEET, *args], capture_output=True, text=True, env=self.process_env(env), timeout=300)
        result = Result(args, proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"beet {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return result

    def start_patched_process(self, setup: str, *args: str) -> subprocess.Popen:
        """``beet ARGS`` in a new process that first runs the Python code `setup` (which may
        patch a function to die, stall or signal at a chosen moment); the caller waits on it."""
        code = (
            f"import sys\nsys.argv = {['beet', *args]!r}\n{textwrap.dedent(setup)}\nimport beets.ui\nbeets.ui.main()\n"
        )
        return subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=self.process_env(), cwd=Path(__file__).parents[1],
        )  # fmt: skip

    def run_patched_process(self, setup: str, *args: str) -> Result:
        """`start_patched_process`, waited for."""
        proc = self.start_patched_process(setup, *args)
        stdout, stderr = proc.communicate(timeout=300)
        return Result(args, proc.returncode, stdout, stderr)

    def field(self, name: str) -> dict[str, str]:
        out = self.run("ls", "-f", f"$path\t${name}").stdout
        return {Path(line.split("\t")[0]).name: line.split("\t")[1] for line in out.splitlines() if "\t" in line}
