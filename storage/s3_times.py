"""The timestamps S3 responses carry, parsed without dateutil (pure).

botocore parses every timestamp of a response with dateutil: a listing's `LastModified` per
key took about two thirds of the CPU of listing 1,000 keys. S3 servers send two forms, ISO
8601 in UTC in XML bodies (`2026-12-04T03:27:40.000Z`) and the HTTP date in headers (`Thu, 04
Dec 2026 03:27:40 GMT`); `fast_timestamp` reads those two exactly and answers None for
anything else, which storage/s3.py then hands to botocore's own parser.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

# Up to 6 digits of a second: a 7th is more than datetime holds, and botocore's parser reads
# such a value another way; it gets those.
_ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z")
_HTTP_DATE = re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT")
_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}


def fast_timestamp(value: str) -> datetime | None:
    """`value` as an aware UTC datetime when it is one of the two forms S3 sends, else None."""
    try:
        if _ISO_UTC.fullmatch(value):
            return datetime.fromisoformat(value)
        http = _HTTP_DATE.fullmatch(value)
        if http is not None and http[2] in _MONTHS:
            day, _, year, hour, minute, second = http.groups()
            return datetime(int(year), _MONTHS[http[2]], int(day), int(hour), int(minute), int(second),
                            tzinfo=timezone.utc)
    except ValueError:  # the right shape but no such moment (a 13th month, hour 25)
        return None
    return None
