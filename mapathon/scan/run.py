"""``mapathon scan``: each photo or scanned page placed, written as a GeoTIFF of its map frame with a
JSON sidecar, and added to the project's imagery as the ``scans`` layer (served by ``imagery serve``).

A file that cannot be placed is reported in one line and the batch goes on; nothing is half-written
(every output is written to a temporary file and renamed).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MapathonError
from ..fsutil import atomic_path
from . import marks, register
from .page import PX_PER_MM, ScannedPage

SCANS_SOURCE = "scans"  # the imagery source (MBTiles cache) that holds every placed page
SCANS_TITLE = "Field papers (scans)"
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif"}
PDF_DPI = 300


@dataclass
class ScanResult:
    source: str
    ok: bool
    message: str = ""
    page: str = ""
    geotiff: str = ""
    sidecar: str = ""
    residual_mm: float | None = None
    residual_max_mm: float | None = None
    residual_m: float | None = None
    method: str = ""
    marks: int | None = None
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "", [])} | {"ok": self.ok}


# -- inputs -------------------------------------------------------------------------------------------------


def _open_image(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    if path.suffix.lower() in (".heic", ".heif"):
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError:
            raise MapathonError(f"{path}: HEIC photos need the pillow-heif package; "
                                "or send the photo as JPEG (WhatsApp does)") from None
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise MapathonError(f"{path}: not a picture that can be read ({e.__class__.__name__})") from None


def images(path: Path):
    """Yield (label, RGB array or MapathonError) for each picture in *path* (each page of a PDF)."""
    if not path.is_file():
        yield str(path), MapathonError(f"{path}: no such file")
        return
    if path.suffix.lower() == ".pdf":
        import pypdfium2 as pdfium

        try:
            doc = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError:
            yield str(path), MapathonError(f"{path}: not a PDF that can be read")
            return
        try:
            n = len(doc)
            for i in range(n):
                label = f"{path}#page{i + 1}" if n > 1 else str(path)
                page = doc[i]
                yield label, np.asarray(page.render(scale=PDF_DPI / 72).to_pil().convert("RGB"))
                page.close()
        finally:
            doc.close()
        return
    if path.suffix.lower() not in IMAGE_EXTS:
        yield str(path), MapathonError(f"{path}: not a photo or scan (give JPEG, PNG, HEIC or PDF files)")
        return
    try:
        yield str(path), _open_image(path)
    except MapathonError as e:
        yield str(path), e


# -- outputs ------------------------------------------------------------------------------------------------


def write_geotiff(page: ScannedPage, dest: Path) -> None:
    """The rectified map frame as a tiled GeoTIFF in the page's CRS, with overviews (atomic)."""
    with atomic_path(dest) as tmp:
        _write_tif(page, tmp)


def _write_tif(page: ScannedPage, path: Path) -> None:
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.transform import from_bounds

    rows, cols = page.shape
    (minx, maxy), _, (maxx, miny), _ = page.frame_corners_crs
    profile = {"driver": "GTiff", "width": cols, "height": rows, "count": 3, "dtype": "uint8",
               "crs": f"EPSG:{page.crs}", "transform": from_bounds(minx, miny, maxx, maxy, cols, rows),
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "jpeg", "jpeg_quality": 88,
               "photometric": "YCBCR", "interleave": "pixel"}  # a photo: JPEG is 5x faster than deflate
    with rasterio.Env(GDAL_CACHEMAX=64):  # MB: GDAL's default is 5 % of the RAM
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(np.moveaxis(page.rectified, 2, 0))
            ds.build_overviews([2, 4, 8, 16], Resampling.average)
            ds.update_tags(mapathon_page=page.page_id, mapathon_source=Path(page.source).name)


def write_json(data: dict, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


# -- the batch ----------------------------------------------------------------------------------------------


def scan_files(paths: list[Path], out_dir: Path, *, project=None, progress=None,
               brought_by: str | None = None) -> list[ScanResult]:
    """Place every picture of *paths*; write ``<page>.tif`` and ``<page>.json`` in *out_dir*; add the
    GeoTIFFs to the project's ``scans`` imagery; find the ink marks, write them for review and keep
    them in the project (credited to *brought_by*). *progress(label)* is called once per file."""
    from ..atlas import registration as reg

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[ScanResult] = []
    for path in paths:
        for label, img in images(Path(path)):
            t0 = time.perf_counter()
            if isinstance(img, MapathonError):
                results.append(ScanResult(label, False, str(img)))
            else:
                try:
                    results.append(_one(img, label, out_dir, project, reg, brought_by))
                except MapathonError as e:
                    results.append(ScanResult(label, False, str(e)))
            results[-1].seconds = round(time.perf_counter() - t0, 2)
        if progress:
            progress(str(path))
    return results


def _one(img, label, out_dir: Path, project, reg, brought_by: str | None) -> ScanResult:
    page = register.place(img, label, project_name=project.name if project is not None else None)
    stem = page.page_id or Path(label).stem
    tif, side = out_dir / f"{stem}.tif", out_dir / f"{stem}.json"
    res = ScanResult(label, True, page=page.page_id, geotiff=str(tif), sidecar=str(side),
                     residual_mm=round(page.residual_mm, 3), residual_max_mm=round(page.residual_max_mm, 3),
                     residual_m=round(page.residual_m, 2), method=page.method)
    # the GeoTIFF appears (renamed) only once it is in the scans imagery too
    with atomic_path(tif) as tmp:
        _write_tif(page, tmp)
        if project is not None:
            _import(project, tmp)
        write_json({**page.sidecar(), "geotiff": tif.name,
                    "scanned": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}, side)
    # the ink marks: found against a fresh render of the page, written for review, kept in the project
    found, files = marks.process_page(page, project, out_dir, brought_by=brought_by, strip_colours=dict(reg.INKS))
    res.marks, res.outputs = len(found), [str(f) for f in files]
    return res


def _import(project, tif: Path) -> None:
    """Add a placed page to the project's ``scans`` imagery (the same MBTiles cache and tile server as
    ``imagery import``/``imagery serve``)."""
    from ..imagery import importer, sources

    if SCANS_SOURCE not in sources.all_sources(project):
        sources.add(project, sources.Source(SCANS_SOURCE, SCANS_TITLE, "local", None, 0, 22,
                                            attribution="Field survey (annotated atlas pages)",
                                            note="photos of annotated atlas pages (mapathon scan)"))
    importer.import_tiles(project, tif, source=SCANS_SOURCE)
