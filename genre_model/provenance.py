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


def genres_origin(fields: Mapping[str, Any]) -> Origin:
    """Who set ``fields["genres"]``, from the record genreclass keeps beside them."""
    genres = list(fields.get("genres") or [])
    if not fields.get(MODEL_FIELD):
        return Origin.USER if genres else Origin.NONE
    recorded = fields.get(GENRES_FIELD)
    if recorded is None:
        # Before genreclass recorded its genres, a corrected track looked like any other.
        return Origin.UNRECORDED if genres else Origin.NONE
    recorded = recorded.split(_STORED_DELIMITER) if isinstance(recorded, str) else list(recorded)
    if genres == recorded:
        return Origin.GENRECLASS if genres else Origin.NONE
    return Origin.CLEARED if not genres else Origin.USER


def learnable(fields: Mapping[str, Any]) -> bool:
    """Whether a track's genres may teach a model: set by a person, never by genreclass (nor
    possibly by it, as with genres from before the record existed)."""
    return genres_origin(fields) is Origin.USER
