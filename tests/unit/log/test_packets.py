"""Packet ids and times as input gives them."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from soulctl.errors import InvalidInput


def test_parse_time_reads_iso_and_ages():
    from soulctl.log.ingest import parse_time

    assert parse_time("2026-11-24T10:00Z") == dt.datetime(2026, 11, 24, 10, tzinfo=dt.timezone.utc)
    assert parse_time("2026-11-24").tzinfo == dt.timezone.utc
    ago = dt.datetime.now(dt.timezone.utc) - parse_time("2h")
    assert dt.timedelta(hours=1, minutes=59) < ago < dt.timedelta(hours=2, minutes=1)
    assert parse_time("7d ago") < parse_time("6d")
    with pytest.raises(InvalidInput, match="cannot read time"):
        parse_time("last tuesday", "--since")
    with pytest.raises(InvalidInput, match="before the year 1"):
        parse_time("99999999999d", "--since")


def test_ids_are_time_ordered_uuid7():
    from soulctl.log.ingest import check_id
    from soulctl.log.packets import new_id, new_session_id

    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == 5000
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert check_id(ids[0].upper(), "line 1") == ids[0]
    with pytest.raises(InvalidInput, match="line 3: id 'x' is not a UUID"):
        check_id("x", "line 3")
    assert new_session_id().startswith("s-")
