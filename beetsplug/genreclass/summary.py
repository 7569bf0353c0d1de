"""What a run did, said once at its end: every track counted once, by what happened to it, and
by whether it was judged alone or in an album (or with its artist's other tracks).

One line reads the same after `beet genreclass` and after an import, whatever `source` says:
``37 tracks classified (31 in 6 albums, 6 alone), 2 uncertain, 1 failed; 40 tracks decoded in
12.3 s (3.3 tracks/s)``. Albums and artists are not counted as outcomes of their own: a track
that failed inside an album would otherwise be counted twice, once as a track and once in its
album's outcome.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Hashable

# What can happen to a track, in the order the summary gives them. classified: its genres
# were set (changed); unchanged: judged, and its genres were already the verdict; uncertain:
# no genre reached min_confidence; skipped: not judged (done before, the user's genres, failed
# before and unchanged since); failed: not decoded, or its tag could not be written.
OUTCOMES = ("classified", "unchanged", "uncertain", "skipped", "failed")

# How a group of each kind is named: "31 in 6 albums", "12 by 3 artists".
_GROUP_WORDS = {"album": ("in", "album"), "artist": ("by", "artist")}


def plural(n: int, word: str) -> str:
    """'1 track', '2 tracks', '0 tracks'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclasses.dataclass
class RunSummary:
    """Outcomes of one command (or one import, whose tasks each add to it).

    tracks: outcome -> tracks. alone: outcome -> those of them judged alone. groups: outcome ->
    kind ("album", "artist") -> the groups those tracks were judged in, each counted once.
    decoded: tracks handed to the decoders (failures included); seconds: time spent on them.
    """

    tracks: Counter = dataclasses.field(default_factory=Counter)
    alone: Counter = dataclasses.field(default_factory=Counter)
    groups: dict[str, dict[str, set[Hashable]]] = dataclasses.field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set))
    )
    decoded: int = 0
    seconds: float = 0.0

    def add(self, outcome: str, kind: str | None = None, group: Hashable = None, n: int = 1) -> None:
        """Count `n` tracks as `outcome`: judged alone (`kind` None) or in `group` of `kind`."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; one of {OUTCOMES}")
        if n <= 0:
            return
        self.tracks[outcome] += n
        if kind is None:
            self.alone[outcome] += n
        else:
            self.groups[outcome][kind].add(group)

    def line(self) -> str:
        """The summary: tracks classified always, the other outcomes when there are any, then
        the decoding time."""
        parts = [f"{plural(self.tracks['classified'], 'track')} classified{self._where('classified')}"]
        parts += [f"{self.tracks[k]} {k}{self._where(k)}" for k in OUTCOMES[1:] if self.tracks[k]]
        line = ", ".join(parts)
        if self.decoded and self.seconds > 0:
            line += (
                f"; {plural(self.decoded, 'track')} decoded in {self.seconds:.1f} s"
                f" ({self.decoded / self.seconds:.1f} tracks/s)"
            )
        return line

    def _where(self, outcome: str) -> str:
        """' (31 in 6 albums, 6 alone)'; ' (in 1 album)' when all were judged in groups of one
        kind; '' when all were judged alone."""
        grouped = {kind: groups for kind, groups in self.groups[outcome].items() if groups}
        if not grouped:
            return ""
        in_groups = self.tracks[outcome] - self.alone[outcome]
        named = [
            f"{_GROUP_WORDS[kind][0]} {plural(len(groups), _GROUP_WORDS[kind][1])}" for kind, groups in grouped.items()
        ]
        if not self.alone[outcome] and len(named) == 1:
            return f" ({named[0]})"
        parts = [f"{in_groups} {' and '.join(named)}"]
        if self.alone[outcome]:
            parts.append(f"{self.alone[outcome]} alone")
        return f" ({', '.join(parts)})"
