"""What the tests build and inspect, one module per kind of thing.

audio: generated sounds, encoded in every format, and the pitch heard in decoded audio.
files: what a file holds: its bytes' digest and its tags.
models: tiny ONNX models with known answers (no torch).
library: a throw-away beets library on `beets.test.helper`, its commands run in the test process
    or as `beet` processes, and the one error a failed command reports.
processes: the process tree from /proc, and a decode job that hangs its own worker.
markers: skips for tests whose data or tools may be absent.
"""
