"""Which coding a polling answer is compressed with, from the client's Accept-Encoding (RFC 9110 12.5.3)."""

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.protocol.http import accepted_compression, compress


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        (None, None),
        ("", None),
        ("identity", None),
        ("br", None),
        ("gzip", "gzip"),
        ("gzip, deflate, br, zstd", "gzip"),  # Chromium's
        ("deflate, gzip", "gzip"),  # equal weights: gzip first, as Node
        ("deflate", "deflate"),
        ("GZip", "gzip"),
        ("gzip;q=0.5, deflate", "deflate"),
        ("gzip;q=0, deflate;q=0", None),
        ("*", "gzip"),
        ("*;q=0", None),
        ("deflate;q=0, *", "gzip"),
        ("gzip;q=0, *;q=0.1", "deflate"),
        ("gzip;q=nonsense", None),
        ("gzip;q=nan, deflate;q=0.2", "deflate"),
    ],
)
def test_the_coding_follows_accept_encoding(header, coding):
    assert accepted_compression(header) == coding


def test_gzip_and_deflate_are_the_http_formats():
    body = b'4["news","' + b"x" * 5000 + b'"]'
    assert gzip.decompress(compress(body, "gzip")) == body
    assert zlib.decompress(compress(body, "deflate")) == body  # zlib-wrapped, as HTTP's deflate is
    assert len(compress(body, "gzip")) < len(body) // 10


@given(st.text())
def test_any_header_gives_a_coding_or_none(header):
    assert accepted_compression(header) in (None, "gzip", "deflate")
