"""storage/s3_times.py: the two timestamp forms S3 sends, read as botocore's parser reads them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from botocore.utils import parse_timestamp
from hypothesis import given
from hypothesis import strategies as st

from storage.s3_times import fast_timestamp

MOMENTS = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),
                       timezones=st.just(timezone.utc))


@given(MOMENTS, st.sampled_from([0, 1, 3, 6]))
def test_iso_utc_reads_as_botocore_reads_it(moment: datetime, digits: int) -> None:
    # Given a moment as an XML body writes it: ISO 8601, 'Z', 0-6 digits of a second
    fraction = f".{moment.microsecond:06d}"[: digits + 1] if digits else ""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
    # Then the same instant as botocore's parser gives, in UTC
    ours = fast_timestamp(text)
    assert ours is not None and ours == parse_timestamp(text) and ours.utcoffset() is not None
    assert ours.tzinfo is timezone.utc


@given(MOMENTS)
def test_http_dates_read_as_botocore_reads_them(moment: datetime) -> None:
    # Given a moment as a header writes it (weekday and month in English, whatever the locale)
    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[moment.weekday()]
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[moment.month - 1]
    text = f"{day}, {moment.day:02d} {month} {moment.year:04d} {moment:%H:%M:%S} GMT"
    ours = fast_timestamp(text)
    assert ours is not None and ours == parse_timestamp(text) and ours.tzinfo is timezone.utc
    assert ours == moment.replace(microsecond=0)


@pytest.mark.parametrize("text", [
    "", "1700000000", "1700000000.5",  # epoch seconds
    "2026-12-04T03:27:40+01:00", "2026-12-04T03:27:40", "2026-12-04 03:27:40Z",  # offsets, no zone
    "2026-12-04T03:27:40.1234567Z",  # more digits than datetime holds
    "2026-13-04T03:27:40Z", "2026-12-04T25:27:40Z", "2026-02-30T00:00:00Z",  # no such moment
    "Thu, 04 Dec 2026 03:27:40 +0000", "Thu, 4 Dec 2026 03:27:40 GMT", "Thu, 04 Dez 2026 03:27:40 GMT",
    "Thu, 31 Feb 2026 03:27:40 GMT", "thu, 04 dec 2026 03:27:40 gmt", " 2026-12-04T03:27:40Z",
])
def test_any_other_form_is_left_to_botocore(text: str) -> None:
    assert fast_timestamp(text) is None


@pytest.mark.s3
def test_s3_clients_parse_with_it(s3_store: Callable[..., Any]) -> None:
    # Given a key on moto (over HTTP); When listed with times and read back whole
    store = s3_store("herd")
    store.put("k", b"v")
    [info] = store.list_with_times("k")
    # Then its time came from fast_timestamp (dateutil's tzutc would be another tzinfo)
    assert info.modified.tzinfo is timezone.utc
    assert abs((datetime.now(timezone.utc) - info.modified).total_seconds()) < 60
