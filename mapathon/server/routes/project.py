"""The project: name, villages, area, imagery, limits; the pages' words; village outlines."""

from __future__ import annotations

import json
from typing import Optional

import shapely
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ... import i18n
from ...project import Project
from ...tasks import lifecycle
from ..room import base_url, imagery_sources, room_of


def _round(obj):
    if isinstance(obj, float):
        return round(obj, 7)
    if isinstance(obj, (list, tuple)):
        return [_round(v) for v in obj]
    return obj


def geometry(geom) -> dict:
    """A shape as GeoJSON, its coordinates rounded to 7 decimals (about 1 cm)."""
    g = shapely.geometry.mapping(geom)
    return {"type": g["type"], "coordinates": _round(g["coordinates"])}


router = APIRouter(tags=["project"])


@router.get("/api/project", summary="The project: name, villages, area, imagery, limits")
async def project_info(request: Request):
    room, base = room_of(request), base_url(request)

    def do(p: Project):
        aoi = p.aoi_geom()
        return {
            "name": p.name, "project_id": p.id, "site": p.site, "bounds": [round(v, 6) for v in aoi.bounds],
            "lang": room.lang,
            "villages": [{"name": v["name"], "lon": v["lon"], "lat": v["lat"]} for v in p.villages()],
            "imagery": imagery_sources(p, room.tiles, base), "max_upload_bytes": room.max_upload,
            "tasks": lifecycle.count_tasks(p),
        }

    return JSONResponse(await room.read(do))


@router.get("/api/i18n", summary="Every word of the pages in one language: ?lang=fr|en, else the room's language")
async def words(request: Request, lang: Optional[str] = None):
    chosen = room_of(request).lang_of(lang)
    return JSONResponse({"lang": chosen, "langs": list(i18n.LANGS), "words": i18n.catalog(chosen)})


@router.get("/api/villages", summary="Village outlines and the area of interest, as GeoJSON")
async def villages(request: Request):
    room = room_of(request)

    def do(p: Project):
        if room.villages_json is None:
            feats = [{"type": "Feature", "properties": {"kind": r["kind"], "name": r["name"]},
                      "geometry": geometry(shapely.from_wkb(r["geom"]))} for r in p.areas()]
            room.villages_json = json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False)
        return room.villages_json

    return Response(await room.read(do), media_type="application/json")
