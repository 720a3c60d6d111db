"""What an area needs in imagery: km², tiles per zoom, download size, and purchase cost.

The default price, 8 € per km², comes from CartONG's quote of about 200 € for 25 km²
of recent very-high-resolution imagery; vendors also set a minimum order area
(``min_order_km2``). A village's cost is what it would cost bought on its own; the
total is one order covering the union of the areas (villages may overlap, so the
total can be less than the sum of the rows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import shapely

from .. import geo, selection
from ..errors import UsageMistake
from . import coverage
from .mbtiles import Reader, cache_path

DEFAULT_PRICE_PER_KM2 = 8.0  # 200 € / 25 km² (CartONG)
DEFAULT_TILE_BYTES = 20_000  # a 256-pixel satellite JPEG at zoom 16-19 is typically 15-25 KB
MAX_ROWS_TASKS = 500


@dataclass
class Area:
    label: str
    geom: object  # shapely, WGS84


@dataclass
class PlanRow:
    label: str
    area_km2: float
    tiles: dict[int, int]
    bytes: int
    cost: float

    @property
    def total_tiles(self) -> int:
        return sum(self.tiles.values())

    def as_dict(self) -> dict:
        return {"label": self.label, "area_km2": round(self.area_km2, 3), "tiles": self.tiles,
                "total_tiles": self.total_tiles, "bytes": self.bytes, "cost": round(self.cost, 2)}


@dataclass
class Plan:
    zooms: list[int]
    rows: list[PlanRow]
    total: PlanRow
    price_per_km2: float
    min_order_km2: float
    tile_bytes: dict[int, int]
    size_basis: str
    source: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"source": self.source, "zooms": self.zooms, "price_per_km2": self.price_per_km2,
                "min_order_km2": self.min_order_km2, "tile_bytes": self.tile_bytes, "size_basis": self.size_basis,
                "rows": [r.as_dict() for r in self.rows], "total": self.total.as_dict(), "notes": self.notes}


def select_areas(project, village: str | None = None, tasks: str | None = None) -> tuple[list[Area], Area]:
    """The rows (villages or tasks) and the whole area they make (for the total and for fetching)."""
    if village and tasks:
        raise UsageMistake("give a village or tasks, not both", field="village", value=village)
    if tasks:
        ts = selection.resolve_tasks(project, tasks)
        rows = [Area(f"task {t.id} ({t.key})", t.geom) for t in ts]
        return rows, Area(f"{len(ts)} task(s)", shapely.union_all([t.geom for t in ts]))
    if village:
        v = project.village(village)
        a = Area(v["name"], shapely.from_wkb(v["geom"]))
        return [a], Area(a.label, a.geom)
    rows = [Area(v["name"], shapely.from_wkb(v["geom"])) for v in project.villages()]
    return rows, Area("whole area of interest", project.aoi_geom())


def tile_sizes(project, source_name: str | None, zooms: list[int]) -> tuple[dict[int, int], str]:
    """Expected bytes per tile per zoom: measured in the cache where it has enough tiles, else a typical figure."""
    sizes = {z: DEFAULT_TILE_BYTES for z in zooms}
    basis = f"{DEFAULT_TILE_BYTES // 1000} KB per tile, a typical satellite JPEG"
    if source_name:
        path = cache_path(project.path, source_name)
        if path.is_file():
            summ = Reader(path).summary()
            measured = {z: v["bytes"] // v["tiles"] for z, v in summ["per_zoom"].items() if v["tiles"] >= 50}
            if measured:
                overall = sum(summ["per_zoom"][z]["bytes"] for z in measured) // sum(
                    summ["per_zoom"][z]["tiles"] for z in measured)
                sizes = {z: measured.get(z, overall) for z in zooms}
                basis = f"the average tile size in the {source_name} cache ({overall / 1000:.1f} KB)"
    return sizes, basis


def cost(area_km2: float, price_per_km2: float, min_order_km2: float) -> float:
    return price_per_km2 * max(area_km2, min_order_km2)


def make_plan(project, zooms: list[int], *, village: str | None = None, tasks: str | None = None,
              price_per_km2: float = DEFAULT_PRICE_PER_KM2, min_order_km2: float = 0.0,
              source: str | None = None) -> Plan:
    if price_per_km2 < 0:
        raise UsageMistake("must be zero or more", field="price_per_km2", value=price_per_km2)
    if min_order_km2 < 0:
        raise UsageMistake("must be zero or more", field="min_order_km2", value=min_order_km2)
    rows, whole = select_areas(project, village, tasks)
    if len(rows) > MAX_ROWS_TASKS:
        raise UsageMistake(f"{len(rows)} tasks; plan at most {MAX_ROWS_TASKS} tasks at once "
                           "(or plan by village)", field="tasks", value=tasks)
    sizes, basis = tile_sizes(project, source, zooms)

    def row(a: Area) -> PlanRow:
        km2 = geo.area_m2(a.geom) / 1e6
        counts = coverage.count_tiles(a.geom, zooms)
        return PlanRow(a.label, km2, counts, sum(counts[z] * sizes[z] for z in zooms),
                       cost(km2, price_per_km2, min_order_km2))

    out = Plan(zooms, [row(a) for a in rows], row(whole), price_per_km2, min_order_km2, sizes, basis, source)
    if len(rows) > 1 and sum(r.area_km2 for r in out.rows) > out.total.area_km2 * 1.001:
        out.notes.append("areas overlap: the total counts shared ground once, so it is less than the sum of the rows")
    if min_order_km2 and out.total.area_km2 < min_order_km2:
        out.notes.append(f"the area is under the minimum order of {min_order_km2:g} km²: the cost is for {min_order_km2:g} km²")
    return out


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def parse_size(text: str | None) -> int | None:
    """'500MB' -> 500_000_000; '2G' -> 2_000_000_000; plain numbers are bytes."""
    if text is None or str(text).strip() == "":
        return None
    m = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?)i?b?\s*", str(text), re.IGNORECASE)
    if not m:
        raise UsageMistake("write a size such as 500MB or 2GB", field="max_size", value=text)
    try:
        value = float(m.group(1))
    except ValueError:
        raise UsageMistake("write a size such as 500MB or 2GB", field="max_size", value=text) from None
    return int(value * 1000 ** " kmgt".index((m.group(2) or " ").lower()))
