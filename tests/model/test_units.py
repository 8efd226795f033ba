"""Byte sizes: one formatter, one parser (``model.units``)."""

import pytest

from xarray_beam.model import units


@pytest.mark.parametrize(
    "count, text",
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (3 * 2**20, "3.0 MiB"),
        (5 * 2**30, "5.0 GiB"),
        (2**40, "1.0 TiB"),
        (2**50, "1024.0 TiB"),
    ],
)
def test_format_bytes_prints_binary_units(count, text):
    assert units.format_bytes(count) == text


def test_parse_size_reads_decimal_and_binary_units():
    assert units.parse_size("64MiB") == 64 * 2**20
    assert units.parse_size("2kB") == 2000
    assert units.parse_size("5e3") == 5000
    with pytest.raises(ValueError, match="not a size"):
        units.parse_size("64 parsecs")


@pytest.mark.parametrize(
    "text, count",
    [
        ("1G", 10**9),
        ("256M", 256 * 10**6),
        ("1GB", 10**9),
        ("1GiB", 2**30),
        ("1.5 kb", 1500),
        ("512", 512),
    ],
)
def test_parse_size_reads_short_units_as_dask_does(text, count):
    assert units.parse_size(text) == count


def test_format_then_parse_keeps_the_size_to_the_printed_precision():
    size = 3 * 2**30 + 12345
    assert abs(units.parse_size(units.format_bytes(size)) - size) < 0.05 * 2**30
