"""Bad files never crash or exhaust the machine (issue 12): bombs, broken caches, absurd values."""

from __future__ import annotations

import bz2
import gzip
import time
import tracemalloc
from pathlib import Path

import pytest

from mapathon.errors import MapathonError
from mapathon.osm.readers import read_osm_file

HEAD = b"<?xml version='1.0' encoding='UTF-8'?>\n<osm version='0.6' generator='JOSM'>\n"


def _bomb(path: Path, megabytes: int) -> Path:
    """A small compressed OSM file that expands to *megabytes* MB (concatenated members, 10 MB each)."""
    block = b" " * 10_000_000
    comp = gzip.compress if path.name.endswith(".gz") else bz2.compress
    member = comp(block, 9)
    path.write_bytes(comp(HEAD) + member * (megabytes // 10))
    return path


@pytest.mark.parametrize("name", ["bomb.osm.gz", "bomb.osm.bz2"])
def test_a_decompression_bomb_is_refused_without_expanding_it(tmp_path, name):
    f = _bomb(tmp_path / name, 200)
    assert f.stat().st_size < 300_000
    tracemalloc.start()
    try:
        with pytest.raises(MapathonError, match=rf"{name}: refused: it expands to more than .*MAPATHON_MAX"):
            read_osm_file(f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 60_000_000  # the ratio limit stops it at 16 MB, never 200


def test_the_absolute_cap_is_configurable(tmp_path, monkeypatch):
    data = HEAD + b"".join(b"<node id='-%d' lat='14.5' lon='-9.1'/>\n" % i for i in range(1, 60_000)) + b"</osm>\n"
    f = tmp_path / "real.osm.gz"
    f.write_bytes(gzip.compress(data))
    assert read_osm_file(f).count() == 59_999
    monkeypatch.setenv("MAPATHON_MAX_UNCOMPRESSED_MB", "0.5")
    with pytest.raises(MapathonError, match=r"real.osm.gz: refused: it expands to more than 0.5 MB"):
        read_osm_file(f)
    monkeypatch.setenv("MAPATHON_MAX_UNCOMPRESSED_MB", "lots")
    with pytest.raises(MapathonError, match=r"MAPATHON_MAX_UNCOMPRESSED_MB='lots': must be a positive number"):
        read_osm_file(f)


def test_a_bomb_is_refused_at_submit_with_one_line(pcli, tmp_path):
    f = _bomb(tmp_path / "awa.osm.bz2", 100)
    r = pcli("submit", f, "--as", "Awa", ok=False)
    assert "awa.osm.bz2: refused: it expands" in r.stdout + r.stderr
