"""User tags on training images (``keep``, ``remove``, ``review`` or free text), stored in the
run and applied on export and in ``compare``.

Tags live in ``RUN/curation/tags.json`` (``{"version": 1, "tags": {id: [tag, ...]}}``), never in
the user's data. ``keep`` and ``remove`` are verdicts and exclude each other: tagging an image
``keep`` drops its ``remove`` and the other way round. A curated set is a filter's kept set (or
the whole training split when there is no filter) with the verdicts applied: ``remove`` takes an
image out, ``keep`` puts it back in, whatever the filter said.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from thresher.errors import ConfigError
from thresher.store import Run

TAGS_FILE = "curation/tags.json"
KEEP, REMOVE, REVIEW = "keep", "remove", "review"
VERDICTS = (KEEP, REMOVE)
#: the tags offered everywhere; any other tag is free text matching :data:`FREE_TEXT`
STANDARD_TAGS = (KEEP, REMOVE, REVIEW)
FREE_TEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,39}$")
MAX_TAGS_PER_IMAGE = 16


def check_tag(tag: str) -> str:
    """``tag`` stripped, or a :class:`ConfigError` naming what a tag may hold."""
    text = str(tag).strip()
    if text in STANDARD_TAGS or FREE_TEXT.match(text):
        return text
    raise ConfigError(
        f"bad tag {tag!r}: use keep, remove, review or free text of 1-40 letters, digits, "
        "spaces and _.:/- starting with a letter or digit"
    )


def load_tags(run: Run) -> dict[str, tuple[str, ...]]:
    """``{id: tags}`` of the run's tagged training images (empty when none were tagged)."""
    if not run.exists(TAGS_FILE):
        return {}
    stored = run.read_json(TAGS_FILE)
    if not isinstance(stored, dict) or not isinstance(stored.get("tags"), dict):
        raise ConfigError(
            f"{run.file(TAGS_FILE)} is not a tag file (expected {{'version': 1, 'tags': "
            "{id: [tag, ...]}}); move it away to start over"
        )
    return {str(k): tuple(str(t) for t in v) for k, v in stored["tags"].items() if v}


def update_tags(
    run: Run,
    ids: Iterable[str],
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    known_ids: Iterable[str] | None = None,
) -> dict[str, tuple[str, ...]]:
    """Add and remove tags on ``ids`` and store them; returns the updated tags of those ids.

    ``known_ids`` are the ids that may be tagged (default: the run's training split); an unknown
    id, a bad tag or a tag both added and removed is refused before anything is written.
    """
    wanted = [str(i) for i in ids]
    if not wanted:
        raise ConfigError("tagging needs at least one image id")
    adds = [check_tag(t) for t in add]
    drops = [check_tag(t) for t in remove]
    if not adds and not drops:
        raise ConfigError("say which tags to add or remove")
    both = sorted(set(adds) & set(drops))
    if both:
        raise ConfigError(f"tag {both[0]!r} is both added and removed; choose one")
    if KEEP in adds and REMOVE in adds:
        raise ConfigError("an image is either kept or removed: add keep or remove, not both")
    if known_ids is None:
        from thresher.workflows.run import run_dataset

        known_ids = run_dataset(run, "train").ids
    known = {str(i) for i in known_ids}
    unknown = [i for i in wanted if i not in known]
    if unknown:
        raise ConfigError(
            f"{len(unknown)} id(s) are not in the run's training split, e.g. {unknown[0]!r}"
        )
    tags = load_tags(run)
    for sample_id in wanted:
        current = [t for t in tags.get(sample_id, ()) if t not in drops]
        for t in adds:
            if t in VERDICTS:  # the other verdict goes: an image is kept or removed
                current = [c for c in current if c not in VERDICTS]
            if t not in current:
                current.append(t)
        if len(current) > MAX_TAGS_PER_IMAGE:
            raise ConfigError(
                f"{sample_id!r} would carry {len(current)} tags; at most {MAX_TAGS_PER_IMAGE}"
            )
        if current:
            tags[sample_id] = tuple(current)
        else:
            tags.pop(sample_id, None)
    run.write_json(TAGS_FILE, {"version": 1, "tags": {k: list(v) for k, v in sorted(tags.items())}})
    return {i: tags.get(i, ()) for i in wanted}


def tag_counts(tags: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
    """Images per tag, most used first."""
    counts: dict[str, int] = {}
    for values in tags.values():
        for t in values:
            counts[t] = counts.get(t, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(frozen=True)
class CuratedSet:
    """A kept set with the user's verdicts applied.

    Attributes:
        ids: ``(M,)`` str, the kept ids in training-split order.
        base_kept: images the filter (or the full split) kept before the verdicts.
        removed_by_tag: kept by the filter, taken out by a ``remove`` tag.
        kept_by_tag: removed by the filter, put back by a ``keep`` tag.
        filter_tag: the filter result it starts from, or None (the whole split).
    """

    ids: np.ndarray
    base_kept: int
    removed_by_tag: int
    kept_by_tag: int
    filter_tag: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": len(self.ids),
            "base_kept": self.base_kept,
            "removed_by_tag": self.removed_by_tag,
            "kept_by_tag": self.kept_by_tag,
            "filter": self.filter_tag,
        }


def apply_verdicts(
    ids: np.ndarray, kept: np.ndarray, tags: Mapping[str, tuple[str, ...]]
) -> tuple[np.ndarray, int, int]:
    """``kept`` ``(N,)`` bool with ``remove`` tags taken out and ``keep`` tags put back.

    Returns the new mask, how many the tags removed and how many they put back.
    """
    keep_tag = np.array([KEEP in tags.get(str(i), ()) for i in ids], dtype=bool)
    remove_tag = np.array([REMOVE in tags.get(str(i), ()) for i in ids], dtype=bool)
    out = (np.asarray(kept, bool) & ~remove_tag) | keep_tag
    removed = int((np.asarray(kept, bool) & remove_tag).sum())
    restored = int((~np.asarray(kept, bool) & keep_tag).sum())
    return out, removed, restored


def curated_set(run: Run, *, tag: str | None = None, use_filter: bool = True) -> CuratedSet:
    """The kept set of filter ``tag`` (newest when None; the whole training split when the run
    has no filter result or ``use_filter`` is False) with the user's verdicts applied."""
    from thresher.workflows.filter import load_filter

    tags = load_tags(run)
    filter_tag = None
    if use_filter and (tag is not None or run.exists("filter/latest.json")):
        result = load_filter(run, tag)
        ids, kept = np.asarray(result.ids).astype(str), np.asarray(result.kept, bool)
        filter_tag = result_tag(run, tag)
    else:
        from thresher.workflows.run import run_dataset

        ids = np.asarray(run_dataset(run, "train").ids).astype(str)
        kept = np.ones(len(ids), bool)
    mask, removed, restored = apply_verdicts(ids, kept, tags)
    return CuratedSet(
        ids=ids[mask],
        base_kept=int(kept.sum()),
        removed_by_tag=removed,
        kept_by_tag=restored,
        filter_tag=filter_tag,
    )


def result_tag(run: Run, tag: str | None) -> str | None:
    """The tag ``load_filter(run, tag)`` reads: ``tag``, or the newest result's."""
    if tag is not None:
        return tag
    if run.exists("filter/latest.json"):
        return str(run.read_json("filter/latest.json").get("tag")) or None
    return None
