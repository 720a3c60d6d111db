"""Download tiles into the MBTiles cache: concurrent, polite, resumable.

* a pool of worker threads, each with its own kept-alive HTTP connection (``_Client``, a requests Session);
* one writer thread owns the SQLite connection and commits in batches, so an interrupted
  run loses at most the tiles of the last, uncommitted batch, never the file;
* every body is checked before it is stored (``inspect_image``: the format's structure to its last
  byte, and its header): truncated, corrupt and non-image bodies are refused (and retried); blank
  tiles and 404s are recorded in ``mapathon_missing``;
* retries with exponential backoff and jitter on timeouts, broken connections, 5xx and bad
  bodies; HTTP 429 (and 503) with ``Retry-After`` pause *all* workers for that long;
* a resumed run skips every tile already stored or recorded as missing;
* a size guard (``max_size``) checked before the start (estimate) and while running.

This is the only module of the package that touches the network.
"""

from __future__ import annotations

import collections
import email.utils
import http.client
import io
import os
import random
import re
import shutil
import sqlite3
import ssl
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import requests
import urllib3
from PIL import Image

from .. import __version__
from ..errors import MapathonError, UsageMistake
from . import mbtiles
from .plan import human_bytes
from .sources import Source

USER_AGENT = (f"mapathon/{__version__} (offline imagery cache for a humanitarian OpenStreetMap mapathon; "
              "python-requests)")
MAX_TILE_PIXELS = 4096 * 4096
WRITER_POLL = 0.01  # seconds
_DONE = object()


@dataclass
class FetchOptions:
    workers: int = 8
    retries: int = 4  # further attempts after the first, for transient faults
    backoff: float = 0.5  # seconds; doubles each attempt, with jitter
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_retry_after: float = 300.0  # a server asking to wait longer aborts the run (resume later)
    max_429: int = 20  # per tile
    max_size: int | None = None  # bytes for the whole cache file
    batch: int = 200  # tiles per commit
    commit_seconds: float = 1.0
    max_consecutive_failures: int | None = None  # default: max(20, 3 * workers)
    user_agent: str = USER_AGENT


@dataclass
class FetchResult:
    path: Path
    source: str
    planned: int = 0
    already: int = 0
    stored: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    seconds: float = 0.0
    retries: int = 0
    throttled: int = 0
    aborted: str | None = None
    interrupted: bool = False
    cache_tiles: int = 0
    cache_bytes: int = 0

    @property
    def todo(self) -> int:
        return self.planned - self.already

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    def as_dict(self) -> dict:
        return {"path": str(self.path), "source": self.source, "planned": self.planned, "already": self.already,
                "stored": self.stored, "missing": self.missing, "failed": self.failed, "bytes": self.bytes,
                "seconds": round(self.seconds, 3), "retries": self.retries, "throttled": self.throttled,
                "aborted": self.aborted, "interrupted": self.interrupted, "cache_tiles": self.cache_tiles,
                "cache_bytes": self.cache_bytes}


class BadBody(Exception):
    pass


# A one-colour tile compresses to almost nothing: at most 0.04 byte per pixel in JPEG (even at quality
# 100), PNG (any zlib level but 0) and WebP, 256- and 512-pixel tiles alike. Bodies below this density
# (3 times that) are decoded to look for blank tiles; denser ones cannot be one colour, except a PNG
# stored without compression, which is decoded too.
BLANK_MAX_BYTES_PER_PIXEL = 0.125
_PADDING = b"\x00\r\n\t "
_JPEG_SOI_EOI = re.compile(rb"\xff[\xd8\xd9]")  # a regex: 3 times faster than two bytes.find here


def _check_jpeg(body: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG with SOI, well-formed marker segments and one frame header (8-bit,
    Huffman-coded baseline or progressive) before the first scan, EOI at the very end, no image boundary
    between."""
    n = len(body)
    i = 2
    size = None
    while True:
        if i + 4 > n:
            raise BadBody("truncated JPEG (cut in its header)")
        if body[i] != 0xFF:
            raise BadBody(f"corrupt JPEG header (no marker at byte {i})")
        m = body[i + 1]
        if m == 0xFF:  # fill byte
            i += 1
            continue
        if m == 0x01 or 0xD0 <= m <= 0xD7:  # markers without a length
            i += 2
            continue
        if m in (0xD8, 0xD9):
            raise BadBody("corrupt JPEG header (an image boundary before any image data)")
        length = (body[i + 2] << 8) | body[i + 3]
        if length < 2:
            raise BadBody("corrupt JPEG header (a segment of length < 2)")
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):  # a frame header (SOFn)
            if m not in (0xC0, 0xC1, 0xC2):
                raise BadBody(f"a JPEG coded in a way tile viewers do not read (SOF{m - 0xC0})")
            if size is not None or length < 8 or i + 10 > n:
                raise BadBody("corrupt JPEG header (frame header)")
            if body[i + 4] != 8 or body[i + 9] not in (1, 3, 4):
                raise BadBody(f"a {body[i + 4]}-bit JPEG with {body[i + 9]} components is not a tile")
            size = ((body[i + 7] << 8) | body[i + 8], (body[i + 5] << 8) | body[i + 6])
        i += 2 + length
        if m == 0xDA:  # start of scan: entropy-coded data follows
            if size is None:
                raise BadBody("corrupt JPEG header (no frame header before the image data)")
            break
    end = n
    while end > i and body[end - 1] in _PADDING:
        end -= 1
    if end - i < 2 or body[end - 2:end] != b"\xff\xd9":
        raise BadBody("truncated JPEG (no end-of-image marker)")
    # 0xFF in entropy-coded data is always followed by 0x00 (or a restart marker), so SOI/EOI there mean
    # another image's start or end: a cut body followed by something else
    if _JPEG_SOI_EOI.search(body, i, end - 2):
        raise BadBody("corrupt JPEG (an image boundary inside the image data)")
    return size


def _check_png(body: bytes) -> tuple[int, int, bool]:
    """(width, height, stored without compression) of a PNG whose chunks are all whole with a correct CRC,
    a valid IHDR first, IDAT present, up to IEND (what follows is ignored, as decoders do)."""
    n = len(body)
    view = memoryview(body)
    i = 8
    first = True
    idat = stored = False
    while True:
        if i + 12 > n:
            raise BadBody("truncated PNG (no IEND chunk)")
        length = int.from_bytes(body[i:i + 4], "big")
        kind = body[i + 4:i + 8]
        end = i + 12 + length
        if length > n or end > n:
            raise BadBody(f"truncated PNG (its {kind.decode('latin-1')!r} chunk is cut)")
        if zlib.crc32(view[i + 4:i + 8 + length]) != int.from_bytes(body[end - 4:end], "big"):
            raise BadBody(f"corrupt PNG (bad CRC in its {kind.decode('latin-1')!r} chunk)")
        if first:
            if kind != b"IHDR" or length != 13:
                raise BadBody("corrupt PNG (does not start with IHDR)")
            w, h = int.from_bytes(body[i + 8:i + 12], "big"), int.from_bytes(body[i + 12:i + 16], "big")
            depth, colour, compression, filters, interlace = body[i + 16:i + 21]
            if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filters or interlace > 1:
                raise BadBody(f"corrupt PNG header ({depth}-bit, colour type {colour})")
            first = False
        if kind == b"IDAT" and not idat:
            idat = True
            # zlib header (2 bytes), then the first deflate block: BTYPE 00 is 'stored, not compressed'
            stored = length < 3 or (body[i + 10] >> 1) & 3 == 0
        i = end
        if kind == b"IEND":
            break
    if not idat:
        raise BadBody("corrupt PNG (no image data)")
    return w, h, stored


_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}  # colour type: bit depths


def _check_webp(body: bytes) -> None:
    """RIFF size equal to the body's, chunks that fill it exactly."""
    n = len(body)
    size = int.from_bytes(body[4:8], "little")
    if size + 8 != n:
        raise BadBody(f"truncated WebP (RIFF size {size + 8:,} bytes, body {n:,})" if size + 8 > n
                      else "corrupt WebP (RIFF size smaller than the body)")
    i = 12
    if i + 8 > n:
        raise BadBody("truncated WebP (no image chunk)")
    while i < n:
        if i + 8 > n:
            raise BadBody("corrupt WebP (a chunk header is cut)")
        length = int.from_bytes(body[i + 4:i + 8], "little")
        i += 8 + length + (length & 1)
        if i > n:
            raise BadBody("truncated WebP (a chunk is cut)")


def inspect_image(body: bytes) -> tuple[str, bool]:
    """(format, blank) of a tile body; raises BadBody for anything that is not a whole JPEG/PNG/WebP tile.

    Checks, without decoding the pixels: the format's signature and its structure to the last byte (JPEG
    marker segments, frame header and end-of-image marker; PNG chunks with their CRCs, IHDR and IEND;
    the WebP RIFF size and chunks), so a truncated or cut body is refused. Only bodies small enough to be
    one flat colour (see BLANK_MAX_BYTES_PER_PIXEL), and WebP, go on to Pillow, which reads the header
    and decodes the pixels to tell blank tiles (one colour, or fully transparent). A full decode costs
    ~10 times all of this and does not catch more: JPEG decoders accept a cut stream given an end
    marker, and changed bytes in the entropy-coded data decode to other pixels without an error.
    """
    if not body:
        raise BadBody("empty body")
    fmt = mbtiles.sniff_format(body, default=None)
    if fmt is None:
        head = body[:60].lstrip()
        if head[:1] == b"<" or head[:1] == b"{":
            raise BadBody("the server sent text (an error page?) instead of an image")
        other = next((name for sig, name in _OTHER_FORMATS if body.startswith(sig)), None)
        raise BadBody(f"{other} image, not JPEG/PNG/WebP" if other else "not an image (no JPEG/PNG/WebP signature)")
    uncompressed, size = False, None
    if fmt == "jpg":
        size = _check_jpeg(body)
    elif fmt == "png":
        *size, uncompressed = _check_png(body)
    else:
        _check_webp(body)
    if size is not None:
        _check_size(*size)
        if not uncompressed and len(body) > size[0] * size[1] * BLANK_MAX_BYTES_PER_PIXEL:
            return fmt, False  # too much data to be one colour: no need to decode
    # small enough to be blank (or WebP): Pillow reads the header, and decodes the pixels if it may be blank
    try:
        with Image.open(io.BytesIO(body)) as im:
            if mbtiles.FORMATS.get(im.format or "") != fmt:
                raise BadBody(f"not a valid image (read as {im.format or 'unknown'})")
            _check_size(*im.size)
            if not uncompressed and len(body) > im.width * im.height * BLANK_MAX_BYTES_PER_PIXEL:
                return fmt, False
            return fmt, _is_blank(im, fmt)
    except BadBody:
        raise
    except Exception as e:  # PIL raises many kinds for bad data
        raise BadBody(f"not a valid image ({type(e).__name__}: {str(e)[:80]})") from None


def _check_size(w: int, h: int) -> None:
    if w * h > MAX_TILE_PIXELS:
        raise BadBody(f"a {w}x{h} image is not a tile")
    if w * h == 0:
        raise BadBody("an image of no pixels")


_OTHER_FORMATS = ((b"GIF8", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def _is_blank(im: Image.Image, fmt: str) -> bool:
    """Decode *im* (a small body) and tell whether it is one colour or fully transparent."""
    if fmt == "jpg":
        # decode at 1/8 scale (DCT scaling): enough to see one flat colour, in half the time of a full decode
        im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
    im.load()  # a corrupt body raises here
    extrema = im.getextrema()
    if not isinstance(extrema[0], tuple):  # one band: (lo, hi), not ((lo, hi), ...)
        extrema = [extrema]
    bands = im.getbands()
    if "A" in bands and extrema[bands.index("A")][1] == 0:
        return True  # fully transparent
    if im.mode == "P":
        return extrema[0][0] == extrema[0][1]
    return all(lo == hi for lo, hi in extrema)


def retry_after_seconds(value: str | None, default: float) -> float:
    if not value:
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return default


class _Unreachable(Exception):
    """Connecting failed: nothing was sent."""


class _ConnectTimeout(Exception):
    pass


class _Response:
    """What a GET gave: status, headers (case-insensitive names), the whole body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body


_ORIGIN = re.compile(r"[^:/?#]*:?(//[^/?#]*)?")  # scheme://host:port of a URL


class _NetEnv:
    """The environment's network settings, read once per run and shared by the workers: the CA bundle
    (``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``) and the proxies of each tile host (``*_proxy``, with
    ``no_proxy`` applied per host: ``{switch:a,b,c}`` templates have several). requests reads all this
    from the environment on every request (``trust_env``), which costs more than the request itself."""

    def __init__(self):
        self.verify: bool | str = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._proxies: dict[str, dict[str, str]] = {}

    def proxies(self, url: str) -> dict[str, str]:
        origin = _ORIGIN.match(url).group(0)
        found = self._proxies.get(origin)
        if found is None:
            found = self._proxies[origin] = requests.utils.get_environ_proxies(url)
        return found


class _Client:
    """One worker's ``requests.Session``: kept-alive connections, no retries of its own (the fetcher retries
    with backoff), redirects followed, gzip decoded, a short body refused (urllib3 enforces Content-Length).

    Used through ``Session.send``, without what ``Session.get`` redoes on every request for nothing here
    (measured: ~340 -> ~230 us of CPU per tile, under the interpreter lock shared by all workers):
    the environment (``_NetEnv``, read once per run), merging the session's headers, hooks and settings into
    a new request (a request prepared once is copied, only its URL is prepared each time, unless the server
    sets cookies: then every request is prepared in full, to send them back), and reading the body in 10 KB
    pieces (one ``read`` of the body, decoded).
    """

    def __init__(self, headers: dict[str, str], connect_timeout: float, read_timeout: float, env: _NetEnv):
        s = self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=1, max_retries=0)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        s.headers.update(headers)
        s.trust_env = False
        s.verify = env.verify
        self.env = env
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._template = s.prepare_request(requests.Request("GET", "http://localhost/"))

    def close(self) -> None:
        self.session.close()

    def get(self, url: str) -> _Response:
        """GET *url*. Raises _Unreachable or _ConnectTimeout (connecting failed), TimeoutError (no answer
        in time), ssl.SSLError, http.client.IncompleteRead (the connection broke, the body is short) or
        OSError."""
        s = self.session
        try:
            if len(s.cookies):
                req = s.prepare_request(requests.Request("GET", url))
            else:
                req = self._template.copy()
                req.prepare_url(url, None)
            kw = dict(timeout=self.timeout, allow_redirects=True, stream=True, verify=s.verify, cert=s.cert,
                      proxies=self.env.proxies(url))
            try:
                r = s.send(req, **kw)
            except requests.exceptions.ConnectionError as e:
                if not _stale_connection(e):
                    raise
                r = s.send(req, **kw)  # once more, at once, on a new connection (as browsers do)
            body = r.raw.read(decode_content=True)
        except (requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError):
            raise _ConnectTimeout() from None
        except (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError):
            raise TimeoutError() from None
        except (requests.exceptions.SSLError, urllib3.exceptions.SSLError) as e:
            why = re.search(r"\[SSL: ([A-Z_]+)\][^')\]]*", str(e))
            raise ssl.SSLError(why.group(0) if why else _short_conn_error(str(e))) from None
        except requests.exceptions.ProxyError as e:
            raise _Unreachable(f"proxy: {_short_conn_error(str(e))}") from None
        except requests.exceptions.ConnectionError as e:
            text = str(e)
            if any(k in text for k in ("Connection refused", "Name or service not known", "NewConnectionError",
                                       "Failed to resolve", "No route to host")):
                raise _Unreachable(_short_conn_error(text)) from None
            raise http.client.IncompleteRead(b"") from None
        except (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError):
            raise http.client.IncompleteRead(b"") from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as e:
            raise OSError(f"{type(e).__name__}: {str(e)[:80]}") from None
        return _Response(r.status_code, r.headers, body)


class _State:
    def __init__(self, total: int):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.not_before = 0.0  # global pause until (monotonic), set by 429
        self.done = 0
        self.total = total
        self.bytes_received = 0
        self.consecutive_failures = 0
        self.successes = 0
        self.connect_failures = 0
        self.aborted: str | None = None
        self.retries = 0
        self.throttled = 0
        self.failed: dict[str, int] = {}

    def abort(self, reason: str) -> None:
        with self.lock:
            if self.aborted is None:
                self.aborted = reason
        self.stop.set()

    def pause_until(self, t: float) -> None:
        with self.lock:
            self.not_before = max(self.not_before, t)

    def wait_pause(self) -> None:
        while not self.stop.is_set():
            delay = self.not_before - time.monotonic()
            if delay <= 0:
                return
            self.stop.wait(min(delay, 0.5))


class Fetcher:
    def __init__(self, source: Source, path: Path, options: FetchOptions | None = None,
                 progress: Callable[[int, int, int], None] | None = None,
                 connect: Callable[[Path], sqlite3.Connection] | None = None):
        self.source = source
        self.path = Path(path)
        self.opt = options or FetchOptions()
        self.progress = progress
        self._connect = connect or _create_cache
        if not 1 <= self.opt.workers <= 64:
            raise UsageMistake("must be between 1 and 64", field="workers", value=self.opt.workers)
        host = urlsplit(source.url or "").netloc
        self.host = host or "the server"

    def _host(self, url: str) -> str:
        """The server a tile URL goes to (templates with {switch:a,b,c} have several), for messages."""
        return urlsplit(url).netloc or self.host

    # -- one tile ------------------------------------------------------------------------
    def _get_tile(self, client: _Client, st: _State, z: int, x: int, y: int):
        """('tile', body, fmt) | ('missing', reason) | ('failed', reason) | None when stopped."""
        url = self.source.tile_url(z, x, y)
        attempt = 0
        throttles = 0
        reason = "unknown error"
        while True:
            st.wait_pause()
            if st.stop.is_set():
                return None
            retryable = True
            connect_error = False
            try:
                r = client.get(url)
            except _Unreachable as e:
                reason, connect_error = f"cannot reach {self._host(url)} ({e})", True
            except _ConnectTimeout:
                reason, connect_error = f"could not connect to {self._host(url)} (timed out)", True
            except TimeoutError:
                reason = f"no answer within {self.opt.read_timeout:g} s (slow server)"
            except ssl.SSLError as e:
                reason = f"secure connection to {self._host(url)} failed ({type(e).__name__}: {str(e)[:80]})"
            except (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionError):
                reason = "the connection broke during the download (truncated body)"
            except (http.client.HTTPException, OSError) as e:
                reason = f"request failed ({type(e).__name__}: {str(e)[:80]})"
            else:
                status, body = r.status, r.body
                if status == 200:
                    with st.lock:
                        st.bytes_received += len(body)
                    try:
                        fmt, blank = inspect_image(body)
                    except BadBody as e:
                        reason = f"bad tile body: {e}"
                    else:
                        if blank:
                            return ("missing", "blank")
                        return ("tile", body, fmt)
                elif status in (204, 404, 410):
                    return ("missing", "not-found")
                elif status in (429, 503) and (status == 429 or r.headers.get("retry-after")):
                    throttles += 1
                    with st.lock:
                        st.throttled += 1
                    wait = retry_after_seconds(r.headers.get("retry-after"),
                                               self.opt.backoff * 2 ** min(throttles, 6))
                    if wait > self.opt.max_retry_after:
                        st.abort(f"{self._host(url)} asks to wait {wait:,.0f} s before more requests (HTTP {status}); "
                                 "run the same command again later to resume")
                        return None
                    if throttles > self.opt.max_429:
                        return ("failed", f"HTTP {status}: still throttled after {throttles} waits")
                    st.pause_until(time.monotonic() + wait)
                    continue  # a throttle is not a failed attempt
                elif 500 <= status < 600:
                    reason = f"HTTP {status} (server error)"
                else:
                    retryable = False
                    reason = f"HTTP {status}" + (" (access refused: check the URL, key or terms)"
                                                 if status in (401, 403) else "")
            if connect_error:
                with st.lock:
                    st.connect_failures += 1
                    # nothing ever arrived and every worker cannot connect: the server is unreachable
                    if st.successes == 0 and st.connect_failures >= max(3, min(self.opt.workers, 8)) * 2:
                        st.aborted = st.aborted or f"{reason}; check the URL and the network"
                        st.stop.set()
            if not retryable or attempt >= self.opt.retries or st.stop.is_set():
                return ("failed", reason)
            attempt += 1
            with st.lock:
                st.retries += 1
            delay = self.opt.backoff * 2 ** (attempt - 1) * (0.75 + random.random() / 2)
            if st.stop.wait(delay):
                return None

    # -- threads -----------------------------------------------------------------------------
    def _worker(self, st: _State, todo: list[tuple[int, int, int]], cursor: list[int], out: collections.deque,
                make_client: Callable[[], _Client]):
        try:
            client = make_client()
        except Exception as e:
            st.abort(f"download worker failed: {type(e).__name__}: {e}")
            return
        limit = self.opt.max_consecutive_failures or max(20, 3 * self.opt.workers)
        backlog = 4 * self.opt.batch
        try:
            while not st.stop.is_set():
                with st.lock:
                    i = cursor[0]
                    if i >= len(todo):
                        return
                    cursor[0] = i + 1
                z, x, y = todo[i]
                res = self._get_tile(client, st, z, x, y)
                if res is None:
                    return
                with st.lock:
                    if res[0] == "failed":
                        st.consecutive_failures += 1
                        st.failed[res[1]] = st.failed.get(res[1], 0) + 1
                        if st.consecutive_failures >= limit and st.aborted is None:
                            st.aborted = (f"{st.consecutive_failures} tiles in a row failed (last: {res[1]}); "
                                          "the server may be down or the URL wrong")
                            st.stop.set()
                    else:
                        st.consecutive_failures = 0
                        st.successes += 1
                    st.done += 1
                if res[0] != "failed":
                    out.append((z, x, y, res))
                    while len(out) >= backlog and not st.stop.is_set():  # the writer is behind: wait for it
                        time.sleep(WRITER_POLL)
        except Exception as e:  # a bug or an unexpected library error must not hang the run
            st.abort(f"download worker failed: {type(e).__name__}: {e}")
        finally:
            client.close()

    def _writer(self, st: _State, conn: sqlite3.Connection, inbox: collections.deque, result: FetchResult,
                base_bytes: int):
        pending_tiles: list[tuple] = []
        pending_missing: list[tuple] = []
        last = time.monotonic()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        stored_bytes = 0
        missing: dict[str, int] = {}

        def flush():
            nonlocal pending_tiles, pending_missing, last
            if pending_tiles or pending_missing:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if pending_tiles:
                        conn.executemany("INSERT OR REPLACE INTO tiles (zoom_level, tile_column, tile_row, tile_data)"
                                         " VALUES (?, ?, ?, ?)", pending_tiles)
                    if pending_missing:
                        conn.executemany("INSERT OR REPLACE INTO mapathon_missing"
                                         " (zoom_level, tile_column, tile_row, reason, checked) VALUES (?, ?, ?, ?, ?)",
                                         pending_missing)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                result.stored += len(pending_tiles)
                result.bytes += sum(len(t[3]) for t in pending_tiles)
                for m in pending_missing:
                    missing[m[3]] = missing.get(m[3], 0) + 1
                result.missing = dict(missing)
            pending_tiles, pending_missing = [], []
            last = time.monotonic()

        try:
            while True:
                try:
                    item = inbox.popleft()
                except IndexError:
                    item = None
                    time.sleep(WRITER_POLL)  # polling, not a wake-up per tile: no cost to the workers
                if item is _DONE:
                    flush()
                    return
                if item is not None:
                    z, x, y, res = item
                    if res[0] == "tile":
                        if self.opt.max_size is not None and base_bytes + stored_bytes + len(res[1]) > self.opt.max_size:
                            st.abort(f"the cache reached --max-size {human_bytes(self.opt.max_size)}; raise it to "
                                     "fetch the rest (what is stored is kept)")
                            continue
                        stored_bytes += len(res[1])
                        pending_tiles.append((z, x, mbtiles.tms_row(z, y), res[1]))
                        if self._format is None:
                            self._format = res[2]
                    else:
                        pending_missing.append((z, x, mbtiles.tms_row(z, y), res[1], stamp))
                if len(pending_tiles) + len(pending_missing) >= self.opt.batch or (
                        time.monotonic() - last >= self.opt.commit_seconds):
                    flush()
        except Exception as e:
            text = str(e)
            if isinstance(e, sqlite3.OperationalError) and "full" in text:
                st.abort(f"the disk holding {self.path} is full ({result.stored:,} tiles stored this run); "
                         "free some space and run the same command again to resume")
            else:
                st.abort(f"{self.path}: cannot write the cache ({type(e).__name__}: {text})")

    # -- the run ---------------------------------------------------------------------------------
    def run(self, tiles: dict[int, tuple], estimate_bytes: int | None = None) -> FetchResult:
        t0 = time.perf_counter()
        self._format = None
        result = FetchResult(self.path, self.source.name)
        if self.source.url is None:
            raise MapathonError(f"imagery source {self.source.name}: has no URL (imported tiles only); nothing to fetch")
        zooms = sorted(tiles)
        lo, hi = self.source.min_zoom, self.source.max_zoom
        bad = [z for z in zooms if not lo <= z <= hi]
        if bad:
            raise MapathonError(f"the source {self.source.name} has zooms {lo}-{hi} only", field="zoom", value=bad[0])
        try:
            conn = self._connect(self.path)
        except sqlite3.OperationalError as e:
            raise MapathonError(f"{self.path}: cannot create the cache ({e})") from None
        try:
            known = mbtiles.known_keys(conn, zooms)
            todo: list[tuple[int, int, int]] = []
            for z in zooms:
                xs, ys = tiles[z]
                for x, y in zip(xs.tolist(), ys.tolist()):
                    result.planned += 1
                    if mbtiles.key(z, x, y) in known:
                        result.already += 1
                    else:
                        todo.append((z, x, y))
            base = conn.execute("SELECT COALESCE(SUM(LENGTH(tile_data)), 0) FROM tiles").fetchone()[0]
            self._check_space(len(todo), base, estimate_bytes)
            if not todo:
                if self.progress:
                    self.progress(0, 0, 0)
                self._finish(conn, result, t0)
                return result
            headers = {"User-Agent": self.opt.user_agent, "Accept": "image/*"}
            env = _NetEnv()

            def local_client() -> _Client:
                return _Client(headers, self.opt.connect_timeout, self.opt.read_timeout, env)
            mbtiles.set_metadata(conn, {"name": self.source.title, "format": None})
            n_workers = min(self.opt.workers, len(todo))
            st = _State(len(todo))
            inbox: collections.deque = collections.deque()  # workers append, the writer pops: no lock, no wake-up
            writer = threading.Thread(target=self._writer, args=(st, conn, inbox, result, base),
                                      name="mbtiles-writer", daemon=True)
            workers: list[threading.Thread] = []
            try:
                writer.start()
                cursor = [0]
                workers = [threading.Thread(target=self._worker, daemon=True, name=f"fetch-{i}",
                                            args=(st, todo, cursor, inbox, local_client))
                           for i in range(n_workers)]
                for w in workers:
                    w.start()
                while True:
                    alive = [w for w in workers if w.is_alive()]
                    if not alive:
                        break
                    alive[0].join(timeout=0.1)
                    if self.progress:
                        self.progress(st.done, len(todo), result.bytes)
            except KeyboardInterrupt:
                result.interrupted = True
                st.abort("interrupted")
                for w in workers:
                    w.join()
            finally:
                if writer.is_alive():
                    inbox.append(_DONE)
                    writer.join()
            if self.progress and not result.interrupted:
                self.progress(st.done, len(todo), result.bytes)
            result.failed = dict(st.failed)
            result.retries, result.throttled = st.retries, st.throttled
            result.aborted = st.aborted
            self._finish(conn, result, t0, self._format)
        finally:
            conn.close()
        return result

    def _check_space(self, n: int, base: int, estimate_bytes: int | None) -> None:
        if not n:
            return
        per_tile = estimate_bytes or 20_000
        need = n * per_tile
        if self.opt.max_size is not None and base + need > self.opt.max_size:
            raise MapathonError(
                f"{n:,} tiles to fetch would make the cache about {human_bytes(base + need)}, over --max-size "
                f"{human_bytes(self.opt.max_size)}: fetch fewer zooms or a smaller area, or raise --max-size")
        free = shutil.disk_usage(self.path.parent).free
        if need > free:
            raise MapathonError(f"{n:,} tiles need about {human_bytes(need)} but the disk holding {self.path.parent} "
                                f"has {human_bytes(free)} free")

    def _finish(self, conn, result: FetchResult, t0: float, fmt: str | None = None) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            summ = mbtiles.refresh_metadata(conn, self.source, fmt)
            conn.execute("COMMIT")
            result.cache_tiles, result.cache_bytes = summ["tiles"], summ["bytes"]
        except sqlite3.OperationalError as e:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.OperationalError:
                pass
            if result.aborted is None:
                result.aborted = f"{self.path}: could not update the cache metadata ({e})"
        result.seconds = time.perf_counter() - t0


def _stale_connection(e: requests.exceptions.ConnectionError) -> bool:
    """Whether the request went on a kept-alive connection the server had closed meanwhile (its close not yet
    seen when the connection was reused): closed or reset before any byte of an answer."""
    cause = e.args[0] if e.args else None
    return (isinstance(cause, urllib3.exceptions.ProtocolError) and len(cause.args) > 1
            and isinstance(cause.args[1], (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)))


def _create_cache(path: Path) -> sqlite3.Connection:
    return mbtiles.connect(path, create=True)


def _short_conn_error(text: str) -> str:
    for key in ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                "No address associated with hostname", "No route to host", "Network is unreachable", "timed out"):
        if key in text:
            return key.lower()
    return "connection failed"


def fetch(source: Source, path: Path, tiles: dict[int, tuple], options: FetchOptions | None = None,
          progress: Callable[[int, int, int], None] | None = None, estimate_bytes: int | None = None,
          connect: Callable[[Path], sqlite3.Connection] | None = None) -> FetchResult:
    """Fetch *tiles* ({zoom: (xs, ys)}) from *source* into the MBTiles file *path*."""
    return Fetcher(source, path, options, progress, connect).run(tiles, estimate_bytes)


def fetch_for_project(project, zooms: list[int], *, village: str | None = None, tasks: str | None = None,
                      source: str | None = None, options: FetchOptions | None = None,
                      progress: Callable[[int, int, int], None] | None = None,
                      actor: str = "organizer") -> FetchResult:
    """Fetch the tiles covering the project's area (or a village, or tasks) into ``imagery/<source>.mbtiles``."""
    from . import coverage, mbtiles, plan
    from .sources import get

    src = get(project, source)
    if src.url is None:
        raise MapathonError(f"imagery source {src.name}: was imported from a disk and has no URL; nothing to fetch")
    _, whole = plan.select_areas(project, village, tasks)
    tiles = coverage.tiles(whole.geom, zooms)
    sizes, _ = plan.tile_sizes(project, src.name, zooms)
    n = sum(len(v[0]) for v in tiles.values())
    avg = sum(len(tiles[z][0]) * sizes[z] for z in zooms) // max(n, 1)
    result = fetch(src, mbtiles.cache_path(project.path, src.name), tiles, options, progress, estimate_bytes=avg)
    with project.transaction():
        project.record(actor=actor, action="imagery.fetch",
                       data={"area": whole.label, "zooms": zooms, **{k: v for k, v in result.as_dict().items()
                                                                      if k != "path"}})
    return result
