"""``mapathon scan``: each photo or scanned page placed, written as a GeoTIFF of its map frame with a
JSON sidecar, and added to the project's imagery as the ``scans`` layer (served by ``imagery serve``).

A file that cannot be placed is reported in one line and the batch goes on; nothing is half-written
(every output is written to a temporary file and renamed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MapathonError
from ..fsutil import atomic_path, temp_path
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


@dataclass(frozen=True)
class Picture:
    """One picture to place: a photo or scan file, or one page of a PDF (*pdf_page*, from 0); *error*
    when it is refused before being read. Small, so that it is sent to the batch's processes."""

    index: int
    path: str
    label: str
    pdf_page: int | None = None
    error: str = ""


def pictures(path: Path, start: int = 0) -> list[Picture]:
    """The pictures of *path* (each page of a PDF), numbered from *start*; not read yet (see :func:`read`)."""
    path = Path(path)
    if not path.is_file():
        return [Picture(start, str(path), str(path), error=f"{path}: no such file")]
    if path.suffix.lower() == ".pdf":
        import pypdfium2 as pdfium

        try:
            doc = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError:
            return [Picture(start, str(path), str(path), error=f"{path}: not a PDF that can be read")]
        n = len(doc)
        doc.close()
        return [Picture(start + i, str(path), f"{path}#page{i + 1}" if n > 1 else str(path), i) for i in range(n)]
    if path.suffix.lower() not in IMAGE_EXTS:
        return [Picture(start, str(path), str(path),
                        error=f"{path}: not a photo or scan (give JPEG, PNG, HEIC or PDF files)")]
    return [Picture(start, str(path), str(path))]


def read(pic: Picture) -> np.ndarray:
    """The picture as an oriented RGB array (a PDF page rendered at ``PDF_DPI``); MapathonError when it
    cannot be read."""
    if pic.error:
        raise MapathonError(pic.error)
    if pic.pdf_page is None:
        return _open_image(Path(pic.path))
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pic.path)
    try:
        page = doc[pic.pdf_page]
        img = np.asarray(page.render(scale=PDF_DPI / 72).to_pil().convert("RGB"))
        page.close()
        return img
    finally:
        doc.close()


# -- outputs ------------------------------------------------------------------------------------------------


def _write_tif(page: ScannedPage, path: Path) -> None:
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import from_bounds

    rows, cols = page.shape
    (minx, maxy), _, (maxx, miny), _ = page.frame_corners_crs
    grid = {"width": cols, "height": rows, "count": 3, "dtype": "uint8", "crs": f"EPSG:{page.crs}",
            "transform": from_bounds(minx, miny, maxx, maxy, cols, rows)}
    # The overviews are made in memory and copied with the image: building them in the JPEG GeoTIFF
    # itself reads its blocks back, 0.3 s a page against 0.15 s. A photo: JPEG is 5x faster than deflate.
    with rasterio.Env(GDAL_CACHEMAX=64):  # MB: GDAL's default is 5 % of the RAM
        with MemoryFile() as mem, mem.open(driver="MEM", **grid) as ds:
            ds.write(np.moveaxis(page.rectified, 2, 0))
            ds.build_overviews([2, 4, 8, 16], Resampling.average)
            ds.update_tags(mapathon_page=page.page_id, mapathon_source=Path(page.source).name)
            rio_copy(ds, str(path), driver="GTiff", COPY_SRC_OVERVIEWS="YES", TILED="YES", BLOCKXSIZE=256,
                     BLOCKYSIZE=256, COMPRESS="JPEG", JPEG_QUALITY=88, PHOTOMETRIC="YCBCR", INTERLEAVE="PIXEL")


def write_json(data: dict, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


# -- the batch ----------------------------------------------------------------------------------------------

#: Processes placing pictures at once: the 2 cores of the laptop the scan is made for. Each peaks at
#: about 500 MB with a 12-MP photo and its marks (docs/performance.md: the batch's processes about 1 GB
#: together, shared libraries counted in each). MAPATHON_JOBS=1 places them one after the other in
#: this process.
MAX_WORKERS = 2


@dataclass
class ProjectView:
    """What the processes of a batch need of the project, without its database (the main process
    alone writes to it): its folder (for the data and the layer cache), name, language and villages."""

    path: Path
    name: str
    lang: str
    areas: list[dict]

    @classmethod
    def of(cls, project) -> "ProjectView":
        return cls(Path(project.path), project.name, project.lang,
                   [{"name": v["name"], "geom": bytes(v["geom"])} for v in project.villages()])

    def villages(self) -> list[dict]:
        return self.areas


@dataclass
class _Placed:
    """A picture placed by a process of the batch: its GeoTIFF written under a temporary name, its
    marks found and their review files written; the main process keeps them (see :func:`_keep`)."""

    result: ScanResult
    tmp_tif: Path | None = None
    sidecar: dict = field(default_factory=dict)
    page: ScannedPage | None = None  # without its pixels
    marks: list = field(default_factory=list)
    tiles: Path | None = None  # the GeoTIFF cut into tiles (an MBTiles file), for the project's imagery


def scan_files(paths: list[Path], out_dir: Path, *, project=None, progress=None,
               brought_by: str | None = None) -> list[ScanResult]:
    """Place every picture of *paths*; write ``<page>.tif`` and ``<page>.json`` in *out_dir*; add the
    GeoTIFFs to the project's ``scans`` imagery; find the ink marks, write them for review and keep
    them in the project (credited to *brought_by*). *progress(path)* is called once per file.

    The pictures are placed by up to :data:`MAX_WORKERS` processes; this one keeps the results in the
    order given (the project's imagery and marks, the GeoTIFFs renamed into place): of two photos of
    one page, the later one wins, as one after the other."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[tuple[str, list[Picture]]] = []
    for path in paths:
        files.append((str(path), pictures(Path(path), sum(len(p) for _, p in files))))
    todo = [pic for _, pics in files for pic in pics]
    view = ProjectView.of(project) if project is not None else None
    results: list[ScanResult] = []
    last = {pics[-1].index: path for path, pics in files if pics}

    def keep(placed: _Placed) -> None:
        t0 = time.perf_counter()
        res = _keep(placed, project, brought_by)
        res.seconds = round(placed.result.seconds + time.perf_counter() - t0, 2)
        results.append(res)
        if progress and len(results) - 1 in last:
            progress(last[len(results) - 1])

    for path, pics in files:  # files without any picture (an empty PDF) count at once
        if not pics and progress:
            progress(path)
    with tempfile.TemporaryDirectory(prefix="mapathon-scan-") as batch_dir:
        args = (out_dir, view, brought_by, Path(batch_dir))
        workers = _workers(len(todo))
        if workers <= 1:
            for pic in todo:
                try:
                    placed = place_one(pic, *args)
                except Exception as e:  # noqa: BLE001 - not a MapathonError: this picture's line, the rest goes on
                    placed = _failed(pic, e)
                keep(placed)
        else:
            _warm_cache(project)
            with contextlib.closing(_in_pool(todo, args, workers)) as placed_in_order:
                for placed in placed_in_order:
                    keep(placed)
    return results


def _workers(n: int) -> int:
    from ..parallel import jobs

    return min(jobs(MAX_WORKERS), n) if n else 1


def _in_pool(todo: list[Picture], args: tuple, workers: int):
    """place_one(pic, *args) for every picture in *workers* fresh processes; yields in *todo*'s order.

    A process that stops (killed by the system, out of memory) stops the pool: the pictures not placed
    yet are placed again by one process at a time, where the picture that stops that one too is given
    up with its line. An error that is not a MapathonError fails its picture only. Pictures placed but
    not kept (Ctrl-C, or the caller stopped) have their files removed; the processes ignore Ctrl-C
    (this one stops the batch) and finish the picture they are placing."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # spawned, not forked: this process runs the progress bar's thread and holds the project's database
    ctx = multiprocessing.get_context("spawn")
    at = 0
    while at < len(todo):
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker)
        futures, given, broken = [], 0, False
        try:
            with _single_threaded_children():  # the processes start while the pictures are handed out
                futures = [pool.submit(place_one, pic, *args) for pic in todo[at:]]
            for fut in futures:
                try:
                    placed = fut.result()
                except BrokenProcessPool:
                    broken = True
                    break
                except Exception as e:  # noqa: BLE001 - this picture's line, the rest goes on
                    placed = _failed(todo[at], e)
                at, given = at + 1, given + 1
                yield placed
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for fut in futures[given:]:  # placed meanwhile, not given to be kept: nothing of them stays
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    _discard(fut.result())
        if broken:
            if workers == 1:  # alone in its process, and it stopped it: this picture is the cause
                pic = todo[at]
                at += 1
                yield _Placed(ScanResult(pic.label, False, f"{pic.label}: the process placing it stopped (out of "
                                                           "memory?); try it again alone"))
            workers = 1


def _failed(pic: Picture, e: BaseException) -> _Placed:
    """A picture that failed with an error that is not a MapathonError (a bug): its one line."""
    why = " ".join(str(e).split())[:200]
    return _Placed(ScanResult(pic.label, False, f"{pic.label}: could not be placed ({e.__class__.__name__}"
                                                f"{': ' + why if why else ''}); please report it"))


def _discard(placed: _Placed) -> None:
    """Remove what a process wrote for a picture that is not kept: its temporary GeoTIFF, its tiles and
    its marks' review files (they would describe a placement that is not there)."""
    for f in (placed.tmp_tif, placed.tiles, *placed.result.outputs):
        if f is not None:
            Path(f).unlink(missing_ok=True)


#: Thread counts of the numerical libraries in the batch's processes: one process per core already. OpenBLAS
#: (numpy's linear algebra: the homography, the bent-paper spline) otherwise starts a thread per core in
#: each process, and its threads spinning for work cost 7 % of a batch's time (measured: 8 photos,
#: 12.6-13.2 s -> 11.5-12.3 s).
_CHILD_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _single_threaded_children():
    """Processes started inside this block read one thread for the numerical libraries (unless the user
    set a number); this process's own setting and environment are as before afterwards."""
    saved = {k: os.environ.get(k) for k in _CHILD_THREADS}
    for k in _CHILD_THREADS:
        os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _init_worker() -> None:
    import signal

    import cv2

    cv2.setNumThreads(1)  # one process per core already
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the main process stops the batch, cleanly


def _warm_cache(project) -> None:
    """Build the project's layer cache here, before the processes of the batch render from it."""
    if project is None:
        return
    from ..atlas.cache import open_cache
    from ..osm.submit import latest_data

    try:
        open_cache(latest_data(project), project.path / "cache")
    except MapathonError:
        pass  # no data yet: the marks are looked for on the photo alone


def place_one(pic: Picture, out_dir: Path, view: ProjectView | None, brought_by: str | None,
              batch_dir: Path | None) -> _Placed:
    """Place one picture, write its GeoTIFF under a temporary name (and, with a project, its tiles in
    *batch_dir*), find its marks (the page's render kept in *batch_dir*) and write their review files:
    what a process of the batch does. A picture that cannot be placed gives its one-line reason."""
    from ..atlas import registration as reg
    from ..imagery import importer

    t0 = time.perf_counter()
    try:
        page = register.place(read(pic), pic.label, project_name=view.name if view is not None else None)
        stem = page.page_id or Path(pic.label).stem
        tif, side = out_dir / f"{stem}.tif", out_dir / f"{stem}.json"
        res = ScanResult(pic.label, True, page=page.page_id, geotiff=str(tif), sidecar=str(side),
                         residual_mm=round(page.residual_mm, 3), residual_max_mm=round(page.residual_max_mm, 3),
                         residual_m=round(page.residual_m, 2), method=page.method)
        tmp = temp_path(tif)
        tiles = batch_dir / f"tiles-{pic.index}.mbtiles" if view is not None and batch_dir else None
        try:
            _write_tif(page, tmp)
            if tiles is not None:  # the scans imagery's tiles cut here; the main process imports them
                importer.tile_raster(tmp, tiles)
            # the ink marks: found against a render of the page, written for review (kept by _keep)
            found, files = marks.process_page(page, view, out_dir, brought_by=brought_by,
                                              strip_colours=dict(reg.INKS), record=False,
                                              reference_dir=batch_dir)
        except BaseException:
            tmp.unlink(missing_ok=True)
            if tiles is not None:
                tiles.unlink(missing_ok=True)
            raise
        res.marks, res.outputs = len(found), [str(f) for f in files]
        placed = _Placed(res, tmp, {**page.sidecar(), "geotiff": tif.name}, page.without_pixels(), found, tiles)
    except MapathonError as e:
        placed = _Placed(ScanResult(pic.label, False, str(e)))
    placed.result.seconds = round(time.perf_counter() - t0, 2)
    return placed


def _keep(placed: _Placed, project, brought_by: str | None) -> ScanResult:
    """In the main process: a placed picture's GeoTIFF into the project's ``scans`` imagery, then renamed
    into place (it appears only once it is served), its JSON sidecar, its marks into the project."""
    res = placed.result
    if placed.tmp_tif is None:
        return res
    try:
        if project is not None:
            _import(project, placed.tiles or placed.tmp_tif)
        write_json({**placed.sidecar, "scanned": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
                   Path(res.sidecar))
        os.replace(placed.tmp_tif, res.geotiff)
        if project is not None:
            marks.record_marks(project, placed.page, placed.marks, brought_by=brought_by)
    except MapathonError as e:
        res = ScanResult(res.source, False, str(e))
    finally:
        placed.tmp_tif.unlink(missing_ok=True)
        if placed.tiles is not None:
            placed.tiles.unlink(missing_ok=True)
    return res


def _import(project, tif: Path) -> None:
    """Add a placed page (its GeoTIFF, or the MBTiles file of its tiles) to the project's ``scans``
    imagery (the same MBTiles cache and tile server as ``imagery import``/``imagery serve``)."""
    from ..imagery import importer, sources

    if SCANS_SOURCE not in sources.all_sources(project):
        sources.add(project, sources.Source(SCANS_SOURCE, SCANS_TITLE, "local", None, 0, 22,
                                            attribution="Field survey (annotated atlas pages)",
                                            note="photos of annotated atlas pages (mapathon scan)"))
    importer.import_tiles(project, tif, source=SCANS_SOURCE)
