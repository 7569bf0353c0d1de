"""A throw-away beets library for the plugin's tests, on beets' own test helper.

`BeetsLibrary` is `beets.test.helper`'s `TestHelper` with `PluginMixin`, as beets' plugin tests
use them: BEETSDIR and HOME in a temporary folder, beets' configuration reset to its test
baseline (`ConfigMixin`), the plugin unloaded between commands, and each command run by
`RunMixin.run_command` (beets' `_raw_main` on the helper's library). What this module adds:

- each command starts as a new `beet` process would: the baseline plus this set-up's
  `settings`, the plugin loaded afresh (it reads its settings once per command), the library
  opened afresh (it reads ``timeout`` and ``replacements`` when it opens), and beets' own
  default of a threaded import;
- its output captured, stdout and the log's stderr apart, as a user sees them; a `UserError`
  becomes the result's `error` and exit status 1 (what beets' `main` prints as one "error:"
  line), and a failed command is sent ``cli_exit`` as a process would end, so no decoder process
  outlives it;
- the global state beets' helper leaves to beets' own conftest put back when the set-up closes:
  the configuration, the log's handlers, the field types Item and Album cached from the plugin;
- the folder is pytest's tmp_path, which pytest removes, not a folder of the helper's own;
- `start_process` / `run_process`: the installed `beet` script in a process of its own, for what
  needs a process (signals, hidden packages, the entry point itself), reading a config.yaml
  written from the same `settings`.

`only_error` is the one way a test asserts that a command failed with exactly one error.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import multiprocessing
import os
import subprocess
import sys
import textwrap
from functools import cached_property
from pathlib import Path
from typing import Any
from unittest import mock

import beets
import beets.plugins
import yaml
from beets import logging as beets_logging
from beets import ui
from beets.library import Library
from beets.test import _common
from beets.test.helper import PluginMixin, TestHelper
from beets.util import cached_classproperty

BEET = str(Path(sys.executable).with_name("beet"))
REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Result:
    """What a `beet` command left: its exit status, its output, and (run in the test process)
    the message of the `UserError` it stopped with."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    error: str | None = None


def only_error(result: Result) -> str:
    """The one error a failed command reported, without beets' "error: " prefix.

    Fails unless the command exited 1 with one error of one line and nothing else on stderr:
    no warning, no other error, no traceback.
    """
    assert result.returncode == 1, result
    if result.error is None:  # a `beet` process: beets' `main` printed it
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        return lines[0].removeprefix("error: ")
    assert "\n" not in result.error.strip() and not result.stderr.strip(), result
    return result.error


def _stream() -> io.TextIOWrapper:
    # A text stream with a byte buffer, like a pipe: `ui.print_` writes to `sys.stdout.buffer`.
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8")


class BeetsLibrary(PluginMixin, TestHelper):
    """A beets set-up in `root`: config folder, library.db, music/ to import from and library/
    for beets' copies. Use it as a context manager (beets' `setup_beets` / `teardown_beets`).

    `settings` is the configuration each command starts from; change it between commands.
    """

    plugin = "genreclass"
    preload_plugin = False  # each command loads it, as `beet` does
    db_on_disk = True  # the run lock, the subprocesses and the tests read the database file

    def __init__(self, root: Path, model: Path | str, **genreclass: Any) -> None:
        self.root = Path(root)
        self.music = self.root / "music"
        self.music.mkdir()
        self.settings: dict[str, Any] = {
            "directory": str(self.lib_path),
            "library": str(self.root / "library.db"),
            "plugins": [self.plugin],
            "verbose": 0,
            "threaded": True,  # beets' default, which the helper's baseline turns off
            "create_backup_before_migrations": False,
            "import": {"copy": False, "write": True, "resume": False, "incremental": False, "duplicate_action": "keep"},
            # Per track unless a test asks for albums: most tests import one folder of unrelated tones.
            "genreclass": {"model": str(model), "workers": 0, "max_windows": 3, "source": "track", **genreclass},
        }

    # -- beets.test.helper, in pytest's folder ----------------------------------------------

    def create_temp_dir(self, **kwargs: Any) -> str:
        return str(self.root)

    def remove_temp_dir(self) -> None:
        """Nothing: the folder is pytest's tmp_path."""

    @cached_property
    def lib_path(self) -> Path:
        return self.root / "library"  # made by the first copy or move, as beets makes it

    def setup_beets(self) -> None:
        config = beets.config
        self._saved_config = (list(config.sources), config._materialized, config._lazy_prefix, config._lazy_suffix)
        self.config.set(copy.deepcopy(self.settings))  # beets' `setup_beets` opens the library with them
        super().setup_beets()

    def teardown_beets(self) -> None:
        try:
            super().teardown_beets()
        finally:
            cached_classproperty.cache.clear()
            config = beets.config
            config.clear()
            config.sources[:], config._materialized, config._lazy_prefix, config._lazy_suffix = self._saved_config

    def _as_a_new_process(self) -> None:
        """beets' global state as a new `beet` process finds it: no plugin loaded, no field type
        cached from one, the configuration read from `settings`, the library opened afresh."""
        self.unload_plugins()
        cached_classproperty.cache.clear()
        self.__dict__.pop("config", None)  # ConfigMixin's `config` resets beets' to the baseline
        self.config.set(copy.deepcopy(self.settings))
        self.lib._close()
        self.lib = Library(self.config["library"].as_path(), self.config["directory"].as_filename())

    # -- commands in the test process --------------------------------------------------------

    def run(self, *args: str, check: bool = True) -> Result:
        """``beet ARGS`` in this process; an exception other than `UserError` propagates."""
        self._as_a_new_process()
        stdout, stderr = _stream(), _stream()
        returncode, error = 0, None
        log = beets_logging.getLogger("beets")
        saved_log = (list(log.handlers), log.level)
        log.handlers = []  # beets adds one on the current sys.stderr: the captured one
        try:
            with (
                contextlib.redirect_stdout(stdout),
                contextlib.redirect_stderr(stderr),
                mock.patch.object(sys, "argv", sys.argv),  # `run_command` replaces it: put back afterwards
                mock.patch.object(sys, "stdin", _common.DummyIn()),  # a prompt fails the command
                # The baseline holds beets' defaults already (ConfigMixin reads them once a session):
                # `_raw_main` would parse config_default.yaml again, a tenth of a command's time.
                mock.patch.object(beets.config, "read"),
            ):
                try:
                    self.run_command(*args)
                except ui.UserError as exc:
                    returncode, error = 1, str(exc)
                except SystemExit as exc:  # --help
                    returncode = exc.code if isinstance(exc.code, int) else 1
                except BaseException:
                    beets.plugins.send("cli_exit", lib=self.lib)
                    raise
                if returncode:
                    # A process would end here, and its decoder processes with it.
                    beets.plugins.send("cli_exit", lib=self.lib)
        finally:
            log.handlers, level = saved_log
            log.setLevel(level)
        leftover = multiprocessing.active_children()
        result = Result(args, returncode, _text(stdout), _text(stderr), error)
        assert not leftover, f"beet {' '.join(args)} left processes running: {leftover}"
        if check and returncode != 0:
            raise AssertionError(
                f"beet {' '.join(args)} failed ({returncode}): {error}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def field(self, name: str) -> dict[str, str]:
        """File name -> the field as `beet ls -f` formats it, for every track."""
        out = self.run("ls", "-f", f"$path\t${name}").stdout
        return {Path(line.split("\t")[0]).name: line.split("\t")[1] for line in out.splitlines() if "\t" in line}

    # -- `beet` processes ---------------------------------------------------------------------

    def start_process(self, *args: str, setup: str = "", env: dict[str, str] | None = None) -> subprocess.Popen:
        """``beet ARGS`` in a new process reading this set-up's settings; the caller waits on it.

        With `setup`, Python code run first in that process (it may patch a function to die,
        stall or signal at a chosen moment), then beets' `main` as the `beet` script calls it.
        `env` adds to this process's environment; a PYTHONPATH in it (a folder that hides a
        package) comes first. This checkout follows it, so the process runs the code under test
        whichever checkout the environment's editable install points at.
        """
        (self.root / "config.yaml").write_text(yaml.safe_dump(self.settings))
        command = [BEET, *args]
        if setup:
            code = f"import sys\nsys.argv = {['beet', *args]!r}\n{textwrap.dedent(setup)}\nimport beets.ui\nbeets.ui.main()\n"
            command = [sys.executable, "-c", code]
        environment = {**os.environ, "BEETSDIR": str(self.root), **(env or {})}
        paths = ((env or {}).get("PYTHONPATH"), str(REPO), os.environ.get("PYTHONPATH"))
        environment["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=environment
        )

    def run_process(self, *args: str, setup: str = "", env: dict[str, str] | None = None, check: bool = True) -> Result:
        """`start_process`, waited for."""
        proc = self.start_process(*args, setup=setup, env=env)
        stdout, stderr = proc.communicate(timeout=300)
        result = Result(args, proc.returncode, stdout, stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"beet {' '.join(args)} failed ({proc.returncode}):\n{stdout}\n{stderr}")
        return result
