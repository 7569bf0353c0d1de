"""Whose genres a track carries: the fields a verdict leaves beside them, and the one rule
that tells genreclass's genres from the user's own.

The plugin writes these fields with every verdict and decides from them what it may replace;
retraining decides from them what it may learn from (a model must learn from people, never
from its own guesses). Both read this module, so the rule is written once. Plain mappings in,
no beets: an item, an album or a dict of its fields all work.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

# The model that judged the track last (its model id), even when it wrote nothing (uncertain).
MODEL_FIELD = "genreclass_model"
# The verdict's top probability, 0..1.
CONFIDENCE_FIELD = "genreclass_confidence"
# The genres genreclass set, exactly as set (after `map`): genres that differ are the user's.
# With `keep_existing` only the part it added after the track's own genres.
GENRES_FIELD = "genreclass_genres"
FIELDS = (MODEL_FIELD, CONFIDENCE_FIELD, GENRES_FIELD)
# How beets stores a list field (its MULTI_VALUE_DSV type); a library opened without the plugin
# does not know the field's type and hands back this stored text.
_STORED_DELIMITER = "\\\u2400"


class Origin(enum.Enum):
    """Who set a track's (or an album's) current genres."""

    NONE = "none"  # no genres, and none removed by hand: free to classify
    GENRECLASS = "genreclass"  # exactly what genreclass wrote
    USER = "user"  # the user's, or another tool's: set without genreclass, or changed since
    CLEARED = "cleared"  # genreclass wrote genres and someone removed them all since
    UNRECORDED = "unrecorded"  # classified by a version that did not record what it wrote
    KEPT = "kept"  # the user's genres, then exactly what genreclass added after them (keep_existing)


def genres_origin(fields: Mapping[str, Any]) -> Origin:
    """Who set ``fields["genres"]``, from the record genreclass keeps beside them."""
    genres = list(fields.get("genres") or [])
    if not fields.get(MODEL_FIELD):
        return Origin.USER if genres else Origin.NONE
    recorded = fields.get(GENRES_FIELD)
    if recorded is None:
        # Before genreclass recorded its genres, a corrected track looked like any other.
        return Origin.UNRECORDED if genres else Origin.NONE
    recorded = _recorded(fields)
    if genres == recorded:
        return Origin.GENRECLASS if genres else Origin.NONE
    if recorded and len(genres) > len(recorded) and genres[-len(recorded) :] == recorded:
        return Origin.KEPT
    return Origin.CLEARED if not genres else Origin.USER


def _recorded(fields: Mapping[str, Any]) -> list[str]:
    recorded = fields.get(GENRES_FIELD) or []
    return recorded.split(_STORED_DELIMITER) if isinstance(recorded, str) else list(recorded)


def users_genres(fields: Mapping[str, Any]) -> list[str]:
    """The genres of a track that a person set: all of them (`Origin.USER`), those before the
    ones genreclass added (`Origin.KEPT`), else none."""
    origin = genres_origin(fields)
    genres = list(fields.get("genres") or [])
    if origin is Origin.KEPT:
        return genres[: -len(_recorded(fields))]
    return genres if origin is Origin.USER else []


def learnable(fields: Mapping[str, Any]) -> bool:
    """Whether a track's genres may teach a model: set by a person, never by genreclass (nor
    possibly by it, as with genres from before the record existed). Of a kept track, only the
    person's part teaches (`users_genres`)."""
    return bool(users_genres(fields))


def with_verdict(fields: Mapping[str, Any], verdict: list[str], keep_others: bool) -> tuple[list[str], list[str]]:
    """(the track's new genres, the part of them genreclass sets, for `GENRES_FIELD`) when
    genreclass writes `verdict`.

    keep_others: the genres genreclass did not set stay, first (the user's, a kept track's
    own part, or genres of a version that did not record its own: they may be the user's),
    and the verdict's genres not among them follow; only those are recorded as genreclass's,
    so that a later verdict replaces them alone. Otherwise the verdict replaces every genre.
    """
    origin = genres_origin(fields)
    if not keep_others or origin in (Origin.NONE, Origin.GENRECLASS, Origin.CLEARED):
        return list(verdict), list(verdict)
    kept = users_genres(fields) if origin is Origin.KEPT else list(fields.get("genres") or [])
    added = [genre for genre in verdict if genre not in kept]
    return kept + added, added
