"""The pytds internals the fast path relies on: present, and a loud failure when they go."""

from __future__ import annotations

from typing import Any

import pytest
from pytds import tds_reader, tds_session, tds_types

from tdsrows import DriverMismatch, check_driver, pytds_link


def test_the_installed_pytds_provides_everything() -> None:
    check_driver()


def test_an_untested_pytds_version_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pytds_link, "driver_version", lambda: (1, 99))
    with pytest.raises(DriverMismatch, match=r"python-tds 1\.99 is installed; .* tested on 1\.17"):
        check_driver()


@pytest.mark.parametrize(
    ("owner", "name", "message"),
    [
        (tds_types, "MsDecimalSerializer", "no longer defines MsDecimalSerializer"),
        (tds_reader._TdsReader, "_read_packet", "_TdsReader no longer has _read_packet"),
        (tds_session._TdsSession, "put_cancel", "_TdsSession no longer has put_cancel"),
    ],
)
def test_a_missing_internal_is_named(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, message: str
) -> None:
    monkeypatch.delattr(owner, name)
    with pytest.raises(DriverMismatch, match=message):
        check_driver()


def test_a_reader_that_no_longer_keeps_its_packet_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # keeps none of the fields
        self._buffer = bytearray()

    monkeypatch.setattr(tds_reader._TdsReader, "__init__", __init__)
    with pytest.raises(
        DriverMismatch, match="no longer keeps _buf, _bufview, _pos, _size, _status"
    ):
        check_driver()
