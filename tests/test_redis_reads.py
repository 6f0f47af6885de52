"""A fetch's reads, worked out once per feature, name the fields and buckets ``Scheme.window`` names."""

from __future__ import annotations

import pytest

from tailor.compiler.features import FeatureKind, FeatureRef
from tailor.runtime.buckets import Scheme
from tailor.runtime.redis_reads import FetchReads
from tailor.runtime.redis_series import latest_field, series_field
from tailor.runtime.redis_store import RedisStore

SCHEME = Scheme.for_retention(30 * 86400)
WINDOWS = [0.0, 60.0, 3600.0, 7200.5, 86400.0, 604800.0, 90 * 86400.0]
ATS = [1_800_000_000.0, 1_800_000_059.999, 1_799_999_999.5]


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("kind", [FeatureKind.COUNT, FeatureKind.TOTAL])
def test_a_counter_s_read_is_the_scheme_s_window(window: float, kind: FeatureKind) -> None:
    ref = FeatureRef(kind, f"x({window})", "view", "Books", window)
    what, field, resolution, span = FetchReads(SCHEME, RedisStore.series_name).read(ref)
    for at in ATS:
        chosen, buckets = SCHEME.window(window, at)
        assert resolution == chosen
        assert (resolution.bucket(at - span), resolution.bucket(at)) == (buckets.start, buckets.stop - 1)
    assert field == series_field(RedisStore.series_name("view", "Books"), resolution)
    assert what == ("c" if kind is FeatureKind.COUNT else "t")


def test_since_reads_the_latest_field_and_attributes_read_nothing_here() -> None:
    reads = FetchReads(SCHEME, RedisStore.series_name)
    since = FeatureRef(FeatureKind.SINCE, 'since("purchase")', "purchase")
    assert reads.read(since) == ("l", latest_field(RedisStore.series_name("purchase", since.key)))
    assert reads.read(FeatureRef(FeatureKind.PROFILE, "user.tier", name="tier")) is None


def test_a_feature_of_the_same_text_but_another_meaning_is_worked_out_again() -> None:
    reads = FetchReads(SCHEME, RedisStore.series_name)
    first = FeatureRef(FeatureKind.COUNT, "f", "view", "Books", 3600.0)
    again = FeatureRef(FeatureKind.COUNT, "f", "view", "Books", 3600.0)  # equal, another object
    other = FeatureRef(FeatureKind.COUNT, "f", "click", "Toys", 86400.0)
    assert reads.read(again) == reads.read(first)
    assert reads.read(other)[1] == series_field(RedisStore.series_name("click", "Toys"), SCHEME.hour)
    assert reads.read(first)[1] == series_field(RedisStore.series_name("view", "Books"), SCHEME.minute)
