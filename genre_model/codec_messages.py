"""What decoder libraries print on their own, kept off the terminal and handed to the caller.

libmpg123 (inside libsndfile) reports a damaged MP3 ("Note: Illegal Audio-MPEG-Header ...",
"Giving up resync ...") by writing to file descriptor 2 itself, below Python, where no
`sys.stderr` redirection reaches. Every libsndfile call in `genre_model.audio` runs inside a
`CodecMessages` block: descriptor 2 points at a temporary file meanwhile, and what landed there
becomes the detail of the error that says in words what went wrong (`AudioDecodeError.detail`,
which the plugin logs at debug level), never raw lines between the results.

This is the one place it happens, whoever decodes: the decoder worker processes, the beets
process itself (``workers: 0`` or ``1``, where the pool runs jobs in place) and training's own
checks. Descriptor 2 belongs to the whole process, so while a block runs, whatever another
thread of the same process writes to it lands in the file too; blocks last as long as one
libsndfile call (milliseconds), and the only threads that share a decoding process are beets'
import stages, whose messages go through the same log.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading

# One redirection at a time: two threads swapping descriptor 2 would restore each other's.
_LOCK = threading.RLock()
# What is kept of the captured text, in bytes: libmpg123 gives up on a file within a few lines,
# and the detail travels back from worker processes in a small message.
_KEPT_BYTES = 4096


class CodecMessages:
    """A block during which file descriptor 2 goes to a temporary file; afterwards `lines`
    holds what was written there (stripped, empty lines dropped), also when the block raised.

        said = CodecMessages()
        try:
            with said:
                ...  # libsndfile calls
        except soundfile.LibsndfileError as exc:
            ...  # said.lines explain exc
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._sink = None
        self._saved_fd: int | None = None

    def __enter__(self) -> CodecMessages:
        _LOCK.acquire()
        try:
            if sys.stderr is not None:
                sys.stderr.flush()  # Python's own pending text goes where it was meant to
            self._sink = tempfile.TemporaryFile()
            self._saved_fd = os.dup(2)
            os.dup2(self._sink.fileno(), 2)
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._saved_fd is not None:
                os.dup2(self._saved_fd, 2)
            if self._sink is not None:
                self._sink.seek(0)
                text = self._sink.read(_KEPT_BYTES).decode("utf-8", errors="replace")
                self.lines = [line.strip() for line in text.splitlines() if line.strip()]
        finally:
            self._close()

    def _close(self) -> None:
        try:
            if self._saved_fd is not None:
                os.close(self._saved_fd)
            if self._sink is not None:
                self._sink.close()
        finally:
            self._saved_fd, self._sink = None, None
            _LOCK.release()
