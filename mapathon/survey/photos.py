"""Geotagged photos (``mapathon photos add``): surveyors' and diaspora volunteers' pictures of the villages.

Each photo's position and time are read from its EXIF data with Pillow (the GPS block: latitude and
longitude with their N/S and E/W references; the time the picture was taken). A photo without a usable
position is refused with one line saying why (no GPS block: messaging apps such as WhatsApp remove it;
a missing reference; 0,0; out of range) and the others go on.

A kept photo is copied, byte for byte, into ``<project>/photos/<sha256>.<ext>`` (the same photo twice is
kept once), attached to the nearest feature of the project's latest data or survey point within
``max_distance`` metres, and recorded in the event log (``photo.add``). :func:`write_gpx` and
:func:`write_geojson` export every photo of the project for JOSM (a GPX layer of waypoints linking to the
images, or a GeoJSON layer with the image path).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable

import numpy as np
import shapely

from ..errors import MapathonError
from ..fsutil import atomic_path

PHOTOS_DIR = "photos"
EVENT = "photo.add"
MAX_BYTES = 30 * 1024 * 1024  # a phone photo is 2-8 MB
DEFAULT_MAX_DISTANCE_M = 50.0
GPS_IFD = 0x8825
EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003
DATETIME = 0x0132


@dataclass
class Photo:
    file: str  # the name it came with
    sha256: str
    stored: str  # path inside the project
    lon: float
    lat: float
    taken: str | None  # "2026-12-05T10:31:00" (camera time, as written) or None
    feature: str | None = None  # "node/123" or "survey:<instance id>"
    distance_m: float | None = None
    already: bool = False

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class PhotoRefused(MapathonError):
    """A photo that cannot be placed."""


def _deg(dms, label: str) -> float:
    try:
        d, m, s = (float(x) for x in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        raise PhotoRefused(f"its GPS {label} is not readable ({dms!r})") from None
    return d + m / 60 + s / 3600


def read_position(path: str | Path) -> tuple[float, float, str | None]:
    """(lon, lat, time taken) from a photo's EXIF data; :class:`PhotoRefused` (naming the file) if unusable."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise PhotoRefused(f"{path}: cannot read ({e.strerror or e})") from None
    if size > MAX_BYTES:
        raise PhotoRefused(f"{path}: {size / 1e6:.0f} MB, over the {MAX_BYTES // 1_000_000} MB limit for a photo")
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            gps = dict(exif.get_ifd(GPS_IFD))
            taken = exif.get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL) or exif.get(DATETIME)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise PhotoRefused(f"{path}: not a photo Pillow can read ({str(e).splitlines()[0] if str(e) else e})") \
            from None
    if not gps or 2 not in gps or 4 not in gps:
        raise PhotoRefused(f"{path}: no GPS position in the photo (messaging apps such as WhatsApp remove it: "
                           "copy the original from the phone, with the camera's location setting on)")
    try:
        lat = _deg(gps[2], "latitude")
        lon = _deg(gps[4], "longitude")
    except PhotoRefused as e:
        raise PhotoRefused(f"{path}: {e}") from None
    lat_ref = str(gps.get(1, "")).strip().upper()[:1]
    lon_ref = str(gps.get(3, "")).strip().upper()[:1]
    if lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
        raise PhotoRefused(f"{path}: its GPS position has no north/south or east/west reference, so the side of "
                           "the equator or of Greenwich is unknown")
    lat = -lat if lat_ref == "S" else lat
    lon = -lon if lon_ref == "W" else lon
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or not (np.isfinite(lat) and np.isfinite(lon)):
        raise PhotoRefused(f"{path}: its GPS position {lat}, {lon} is out of range")
    if abs(lat) < 1e-6 and abs(lon) < 1e-6:
        raise PhotoRefused(f"{path}: its GPS position is 0,0 (the phone had no fix when it was taken)")
    when = None
    if taken:
        try:
            when = datetime.strptime(str(taken).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S").isoformat()
        except ValueError:
            when = None
    return lon, lat, when


def _targets(project, data: Path | None) -> tuple[list[str], np.ndarray]:
    """Features of the latest data (tagged nodes) and survey points: names and (lon, lat)."""
    from ..osm.submit import LATEST_MERGE
    from .conflate import tagged_nodes

    names: list[str] = []
    xy: list[tuple[float, float]] = []
    path = data if data is not None else project.path / LATEST_MERGE
    if path is not None and Path(path).is_file():
        for n in tagged_nodes(path, lambda t: any(k not in ("created_by", "source", "note") for k in t)):
            names.append(f"node/{n.id}")
            xy.append((n.lon / 1e7, n.lat / 1e7))
    try:
        from .store import list_submissions
    except ImportError:  # the submissions store is not there (older project code)
        list_submissions = None
    if list_submissions is not None:
        for s in list_submissions(project):
            if s.lon is not None and s.lat is not None:
                names.append(f"survey:{s.instance_id}")
                xy.append((s.lon, s.lat))
    return names, np.array(xy, dtype=float).reshape(-1, 2)


def add_photos(project, files: Iterable[str | os.PathLike], *, data: str | os.PathLike | None = None,
               max_distance: float = DEFAULT_MAX_DISTANCE_M, actor: str = "organizer"
               ) -> tuple[list[Photo], list[str]]:
    """Keep the photos that have a usable position; return them and one line per refused photo."""
    from .. import geo
    from ..osm.submit import _store

    kept: list[tuple[Path, bytes, str, float, float, str | None]] = []
    refused: list[str] = []
    for f in files:
        f = Path(f)
        try:
            lon, lat, when = read_position(f)
            raw = f.read_bytes()
        except PhotoRefused as e:
            refused.append(str(e))
            continue
        except OSError as e:
            refused.append(f"{f}: cannot read ({e.strerror or e})")
            continue
        kept.append((f, raw, hashlib.sha256(raw).hexdigest(), lon, lat, when))
    if not kept:
        return [], refused
    names, xy = _targets(project, Path(data) if data is not None else None)
    pts = np.array([(k[3], k[4]) for k in kept])
    attach: list[tuple[str | None, float | None]] = [(None, None)] * len(kept)
    if len(names):
        centre = pts.mean(axis=0)
        tr = geo.transformer("EPSG:4326", f"EPSG:{geo.utm_epsg(float(centre[0]), float(centre[1]))}")
        tx, ty = tr.transform(xy[:, 0], xy[:, 1])
        px, py = tr.transform(pts[:, 0], pts[:, 1])
        tree = shapely.STRtree(shapely.points(np.column_stack([tx, ty])))
        (pi, tj), d = tree.query_nearest(shapely.points(np.column_stack([px, py])), max_distance=max_distance,
                                         return_distance=True, all_matches=False)
        for a, b, dist in zip(pi.tolist(), tj.tolist(), d.tolist()):
            attach[a] = (names[b], round(dist, 1))
    folder = project.path / PHOTOS_DIR
    known = {p.sha256 for p in list_photos(project)}
    out: list[Photo] = []
    for (f, raw, sha, lon, lat, when), (feat, dist) in zip(kept, attach):
        ext = f.suffix.lower() or ".jpg"
        _store(folder, sha + ext, raw, sha)
        out.append(Photo(f.name, sha, f"{PHOTOS_DIR}/{sha}{ext}", round(lon, 7), round(lat, 7), when, feat, dist,
                         already=sha in known))
    with project.transaction():
        for p in out:
            if not p.already:
                d = p.as_dict()
                d.pop("already", None)
                project.record(actor=actor, action=EVENT, data=d)
                known.add(p.sha256)
    return out, refused


def list_photos(project) -> list[Photo]:
    """Every photo the project keeps, in the order they were added."""
    seen: dict[str, Photo] = {}
    for (data,) in project.conn.execute("SELECT data FROM events WHERE action = ? ORDER BY seq", (EVENT,)):
        try:
            d = json.loads(data or "{}")
            p = Photo(**{k: d.get(k) for k in ("file", "sha256", "stored", "lon", "lat", "taken", "feature",
                                               "distance_m")})
        except (ValueError, TypeError):
            continue
        seen.setdefault(p.sha256, p)
    return list(seen.values())


def write_gpx(project, photos: list[Photo], dest: str | os.PathLike) -> Path:
    """Waypoints linking to the photos (absolute file paths), for JOSM's photo and marker layers."""
    import gpxpy.gpx

    g = gpxpy.gpx.GPX()
    g.creator = "mapathon"
    for p in photos:
        w = gpxpy.gpx.GPXWaypoint(latitude=p.lat, longitude=p.lon, name=p.file,
                                  description=p.feature or None,
                                  time=datetime.fromisoformat(p.taken) if p.taken else None)
        w.link = (project.path / p.stored).resolve().as_uri()
        w.link_text = p.file
        w.link_type = "image/jpeg"
        g.waypoints.append(w)
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        tmp.write_text(g.to_xml(version="1.1"), encoding="utf-8")
    return dest


def write_geojson(project, photos: list[Photo], dest: str | os.PathLike) -> Path:
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [p.lon, p.lat]},
              "properties": {"file": p.file, "image": str((project.path / p.stored).resolve()), "taken": p.taken,
                             "feature": p.feature, "distance_m": p.distance_m}} for p in photos]
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False),
                       encoding="utf-8")
    return dest
