"""Replacing a file: mode and owner kept, links handled as the README says, failures leave nothing."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from beetsplug.genreclass.safe_write import prepare_replacement, temporary_path


def rewrite(source: str, temporary: str) -> None:
    with open(source, "rb") as src, open(temporary, "xb") as dst:
        dst.write(src.read().upper())


def test_the_new_file_keeps_mode_and_owner_and_replaces_the_old_in_one_rename(tmp_path):
    path = tmp_path / "song.flac"
    path.write_bytes(b"old bytes")
    path.chmod(0o640)
    owner = (path.stat().st_uid, path.stat().st_gid)
    replacement = prepare_replacement(str(path), rewrite)
    assert path.read_bytes() == b"old bytes"  # not in place before the commit
    replacement.commit()
    assert path.read_bytes() == b"OLD BYTES"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert (path.stat().st_uid, path.stat().st_gid) == owner
    assert sorted(os.listdir(tmp_path)) == ["song.flac"]


def test_a_failing_write_or_a_discard_leaves_the_file_and_nothing_beside_it(tmp_path):
    path = tmp_path / "song.mp3"
    path.write_bytes(b"old bytes")

    def fails_halfway(source: str, temporary: str) -> None:
        with open(temporary, "xb") as dst:
            dst.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        prepare_replacement(str(path), fails_halfway)
    prepare_replacement(str(path), rewrite).discard()
    assert path.read_bytes() == b"old bytes" and os.listdir(tmp_path) == ["song.mp3"]


def test_a_stale_copy_from_a_killed_run_is_replaced_not_trusted(tmp_path):
    path = tmp_path / "song.ogg"
    path.write_bytes(b"old bytes")
    with open(temporary_path(str(path)), "wb") as stale:
        stale.write(b"garbage from a killed run")
    prepare_replacement(str(path), rewrite).commit()
    assert path.read_bytes() == b"OLD BYTES"


def test_a_symlink_stays_and_its_target_is_written(tmp_path):
    original = tmp_path / "original.flac"
    original.write_bytes(b"old bytes")
    link = tmp_path / "library.flac"
    link.symlink_to(original)
    prepare_replacement(str(link), rewrite).commit()
    assert link.is_symlink() and original.read_bytes() == b"OLD BYTES"


def test_a_hard_link_keeps_the_old_bytes_under_its_other_name(tmp_path):
    original = tmp_path / "original.flac"
    original.write_bytes(b"old bytes")
    library_copy = tmp_path / "library.flac"
    os.link(original, library_copy)
    prepare_replacement(str(library_copy), rewrite).commit()
    assert library_copy.read_bytes() == b"OLD BYTES" and original.read_bytes() == b"old bytes"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any file")
def test_a_read_only_file_is_refused_though_its_folder_is_writable(tmp_path):
    path = tmp_path / "song.flac"
    path.write_bytes(b"old bytes")
    path.chmod(0o444)
    with pytest.raises(PermissionError, match="not writable"):
        prepare_replacement(str(path), rewrite)
    assert path.read_bytes() == b"old bytes"


# Run in a fresh interpreter: signal handlers and masks are process-wide, and threads that earlier
# tests leave behind (decoder pools, onnxruntime, torch) may hold SIGINT blocked or pending.
_SIGNAL_IN_ANOTHER_THREAD = """
import os, signal, threading, time
from beetsplug.genreclass.safe_write import deferred_signals

# A process as a shell starts it: SIGINT neither ignored nor blocked (a disposition and a mask are
# inherited from the test process, where an earlier test may have left SIGINT ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
seen = []
try:
    with deferred_signals():
        # The kernel hands a process's signal to any thread that does not block it.
        sender = threading.Thread(target=lambda: os.kill(os.getpid(), signal.SIGINT))
        sender.start()
        sender.join()
        time.sleep(0.5)  # let it arrive inside the block (sleep resumes after a handler runs, PEP 475)
        for _ in range(1000):  # bytecodes at which CPython would run a pending handler
            seen.append("working")
        seen.append("done")
except KeyboardInterrupt:  # delivered, but only once the block is over
    print("interrupted after", len(seen), seen[-1] if seen else None)
"""


def test_signals_wait_for_the_end_of_a_write_even_when_another_thread_receives_them():
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_IN_ANOTHER_THREAD], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "interrupted after 1001 done"
