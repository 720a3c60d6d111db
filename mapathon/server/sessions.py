"""Who is asking the room server: volunteers' sign-ins (the ``room_sessions`` table), organizers.

A volunteer signs in by typing a name and gets a token kept by their browser (``X-Session``
header); the name is then bound to that browser: nobody else can act under it from another device
(an organizer can free it). Only a hash of the token is stored.

Two limits keep a room server from growing without end:

* a sign-in not used for ``hours`` hours (``serve --session-hours``) expires: the browser is asked
  for its name again, and the name is free for another device. The time of last use is kept in
  memory (no write per request): a sign-in this process has not seen used counts as used when it
  was made or when this process started, whichever is later. So after a restart every sign-in
  counts as used at the start, and a sign-in made through another server process on the same
  project (several processes behind a reverse proxy) is live here too;
* one address may sign in at most ``per_minute`` new names a minute (``per_minute`` = 0: no limit);
  more are answered 429 with ``Retry-After``. Names already known, organizers (with the token) and
  the server's own computer (127.0.0.1) are not counted.

Every function taking a project runs in the writer's or a reader's thread (see writer.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import math
import threading
import time
from collections import deque

from .. import events
from ..errors import only_outcome
from ..project import Project
from ..tasks import volunteers
from .refusal import Refusal, err

DEFAULT_HOURS = 12.0
DEFAULT_PER_MINUTE = 10
SWEEP_SECONDS = 60.0  # expired sign-ins are deleted at most this often (at a sign-in)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _local(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


class Sessions:
    """The sign-ins of one room server. *clock*: seconds (time.time), replaced by the tests."""

    def __init__(self, hours: float = DEFAULT_HOURS, per_minute: int = DEFAULT_PER_MINUTE, clock=time.time):
        self.hours, self.per_minute, self.clock = hours, per_minute, clock
        self._started = clock()
        self._seen: dict[str, float] = {}  # token hash -> last use (absent: the server's start)
        self._new_names: dict[str, deque] = {}  # address -> times of its last new names
        self._swept = self._started
        self._lock = threading.Lock()

    # -- expiry ----------------------------------------------------------------------------------------------

    def _live(self, h: str, now: float, created: str | None = None) -> bool:
        """Was the sign-in *h* (made at *created*, the table's text) used in the last ``hours`` hours?"""
        last = self._seen.get(h)
        if last is None:
            last = self._started
            with contextlib.suppress(TypeError, ValueError):  # made by another process since this one started
                last = max(last, events.parse_iso(created).timestamp())
        return now - last <= self.hours * 3600

    def names_of(self, p: Project, tokens: list[str]) -> list:
        """For each session token, the name it is signed in as, or the HTTP error that refuses it."""
        hashes = sorted({token_hash(t) for t in tokens if t})
        known = {r[0]: (r[1], r[2]) for r in p.conn.execute(
            f"SELECT token_hash, volunteer, created FROM room_sessions WHERE token_hash IN "
            f"({','.join('?' * len(hashes))})", hashes).fetchall()} if hashes else {}
        now, out = self.clock(), []
        for t in tokens:
            h = token_hash(t) if t else None
            if h is None:
                out.append(err(401, "err.sign_in"))
            elif h not in known:
                out.append(err(401, "err.sign_in_again"))
            elif not self._live(h, now, known[h][1]):
                out.append(err(401, "err.session_expired", hours=f"{self.hours:g}"))
            else:
                self._seen[h] = now
                out.append(known[h][0])
        return out

    def name_of(self, p: Project, token: str) -> str:
        return only_outcome(self.names_of(p, [token]))

    def sweep(self, p: Project, force: bool = False) -> int:
        """Delete the expired sign-ins (at most once a minute unless *force*). Returns how many."""
        now = self.clock()
        if not force and now - self._swept < SWEEP_SECONDS:
            return 0
        self._swept = now
        present = dict(p.conn.execute("SELECT token_hash, created FROM room_sessions").fetchall())
        gone = [h for h, created in present.items() if not self._live(h, now, created)]
        with p.transaction():
            for i in range(0, len(gone), 500):
                chunk = gone[i:i + 500]
                p.conn.execute(f"DELETE FROM room_sessions WHERE token_hash IN ({','.join('?' * len(chunk))})",
                               chunk)
        kept = set(present).difference(gone)
        for h in list(self._seen):  # also those signed out meanwhile (an organizer freed the name)
            if h not in kept:
                self._seen.pop(h, None)
        return len(gone)

    # -- signing in ------------------------------------------------------------------------------------------

    def check_rate(self, address: str | None) -> None:
        """Refuse (429, Retry-After) a new name from an address that gave ``per_minute`` in the last minute."""
        if not self.per_minute or _local(address):
            return
        now = self.clock()
        with self._lock:
            times = self._new_names.get(address or "")
            if times is None:
                return
            while times and now - times[0] >= 60:
                times.popleft()
            if len(times) >= self.per_minute:
                wait = max(1, math.ceil(60 - (now - times[0])))
                raise Refusal(429, "err.too_many_sign_ins", headers={"Retry-After": str(wait)}, n=self.per_minute)
            if not times:
                del self._new_names[address or ""]

    def _count_new_name(self, address: str | None) -> None:
        if not self.per_minute or _local(address):
            return
        now = self.clock()
        with self._lock:
            if len(self._new_names) > 100_000:  # forget the oldest addresses rather than grow
                self._new_names.clear()
            times = self._new_names.setdefault(address or "", deque())
            times.append(now)
            while times and now - times[0] >= 60:
                times.popleft()

    def sign_in(self, p: Project, name: str, token: str, *, organizer: bool, new: bool = False,
                address: str | None = None) -> volunteers.Volunteer:
        """Bind *name* (a volunteer, added if new) to the browser holding *token*. In the writer."""
        name = volunteers.check_name(name)
        self.sweep(p)
        with p.transaction():
            vol = volunteers.find(p, name)
            if vol is not None and vol.is_organizer and not organizer:
                raise err(403, "err.is_organizer", name=vol.name)
            if vol is None and not organizer:
                self.check_rate(address)
            canonical = vol.name if vol else name
            if not organizer:
                now = self.clock()
                held = dict(p.conn.execute("SELECT token_hash, created FROM room_sessions WHERE volunteer = ?",
                                           (canonical,)).fetchall())
                if any(self._live(h, now, created) for h, created in held.items()):
                    raise err(409, "err.signed_in_elsewhere", name=canonical)
                for h in held:  # expired: the name is free again
                    p.conn.execute("DELETE FROM room_sessions WHERE token_hash = ?", (h,))
            vol, created = volunteers.ensure(p, name, new=new)
            h = token_hash(token)
            p.conn.execute("INSERT INTO room_sessions (token_hash, volunteer, created) VALUES (?, ?, ?)",
                           (h, vol.name, events.iso(events.utcnow())))
        self._seen[h] = self.clock()
        if created and not organizer:
            self._count_new_name(address)
        return vol

    def sign_out_name(self, p: Project, name: str) -> dict:
        """An organizer frees a name: every browser signed in under it is signed out."""
        v = volunteers.find(p, name)
        if v is None:
            raise err(404, "err.no_volunteer", name=name)
        with p.transaction():
            n = p.conn.execute("DELETE FROM room_sessions WHERE volunteer = ?", (v.name,)).rowcount
        return {"name": v.name, "signed_out": n}

    # -- organizers ------------------------------------------------------------------------------------------

    def organizer(self, p: Project, org_ok: bool, token: str) -> str:
        """The organizer acting: the one signed in with *token*, else the project's first organizer.
        *org_ok*: the request gave the organizer token."""
        if not org_ok:
            raise err(403, "err.organizer_only")
        if token:
            row = p.conn.execute("SELECT volunteer FROM room_sessions WHERE token_hash = ?",
                                 (token_hash(token),)).fetchone()
            if row:
                v = volunteers.find(p, row[0])
                if v and v.is_organizer:
                    return v.name
        first = volunteers.first_organizer(p)
        if first is None:
            raise err(409, "err.no_organizer")
        return first
