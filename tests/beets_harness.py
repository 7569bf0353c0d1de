"""A throw-away beets set-up driven through the real `beet` executable, and tag readers."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import mutagen
import yaml

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

    def run(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "BEETSDIR": str(self.root), **(env or {})}
        proc = subprocess.run([BEET, *args], capture_output=True, text=True, env=env, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"beet {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def field(self, name: str) -> dict[str, str]:
        out = self.run("ls", "-f", f"$path\t${name}").stdout
        return {Path(line.split("\t")[0]).name: line.split("\t")[1] for line in out.splitlines() if "\t" in line}
