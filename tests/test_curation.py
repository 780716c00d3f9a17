"""User tags: verdicts applied to a kept set, validation, storage in the run."""

from __future__ import annotations

import numpy as np
import pytest

from thresher.errors import ConfigError
from thresher.workflows.curation import apply_verdicts, check_tag, tag_counts


def test_remove_takes_out_and_keep_puts_back_whatever_the_filter_said() -> None:
    ids = np.array(["a", "b", "c", "d"])
    kept = np.array([True, True, False, False])
    tags = {"a": ("remove",), "c": ("keep", "note"), "d": ("review",)}
    mask, removed, restored = apply_verdicts(ids, kept, tags)
    assert mask.tolist() == [False, True, True, False]
    assert (removed, restored) == (1, 1)
    # no tags: the kept set as it was
    same, r0, k0 = apply_verdicts(ids, kept, {})
    assert same.tolist() == kept.tolist()
    assert (r0, k0) == (0, 0)


@pytest.mark.parametrize("tag", ["keep", "remove", "review", "blurry", "odd 7", "src:web/2"])
def test_good_tags_pass(tag: str) -> None:
    assert check_tag(f" {tag} ") == tag


@pytest.mark.parametrize("tag", ["", " ", "<b>", "-x", "a" * 41, "tab\there", "semi;colon"])
def test_bad_tags_are_refused_with_what_a_tag_may_hold(tag: str) -> None:
    with pytest.raises(ConfigError, match="use keep, remove, review or free text"):
        check_tag(tag)


def test_tag_counts_most_used_first() -> None:
    counts = tag_counts({"a": ("keep", "x"), "b": ("x",), "c": ("remove", "x")})
    assert list(counts.items()) == [("x", 3), ("keep", 1), ("remove", 1)]
