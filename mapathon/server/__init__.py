"""The room server (``mapathon serve``): the mapathon in the volunteers' browsers, on the local network.

* ``/``        the volunteers' page: sign in with a name, see the grid over the villages, claim a
               square (or "give me one"), open it in JOSM or iD, hand in the .osm file, mark it done;
               validators validate; organizers (with the token) reset, release, split, grant roles
* ``/board``   the progress board for the projector (refreshes itself)
* ``/api/...`` the JSON API behind both, described at ``/api/openapi.json``
* ``/tiles/...`` the project's imagery cache, when there is one (mapathon.imagery)

Everything is served by the server itself (Leaflet is vendored in ``static/leaflet``): no internet needed.
See docs/room-server.md.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from ..errors import MapathonError, UsageMistake

TOKEN_ENV = "MAPATHON_ORGANIZER_TOKEN"


def lan_addresses() -> list[str]:
    """This computer's addresses on the local network (best effort, no packet is sent)."""
    found = []
    for probe in ("10.255.255.255", "192.168.255.255", "172.31.255.255"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect((probe, 1))
            ip = s.getsockname()[0]
            if ip not in found and not ip.startswith("127."):
                found.append(ip)
        except OSError:
            pass
        finally:
            s.close()
    return found


def run(folder: str | Path, *, host: str = "0.0.0.0", port: int = 8000, token: str | None = None,
        max_upload_mb: float = 20, out=None, lang: str | None = None, session_hours: float | None = None,
        sign_ins_per_minute: int | None = None) -> None:
    """Serve the project until interrupted; prints the addresses and the organizer token first.
    *session_hours*: a sign-in unused this long expires; *sign_ins_per_minute*: new names one
    address may sign in a minute, 0 for no limit (see sessions.py for both defaults)."""
    import uvicorn

    from .app import create_app
    from .sessions import DEFAULT_HOURS, DEFAULT_PER_MINUTE

    session_hours = DEFAULT_HOURS if session_hours is None else session_hours
    sign_ins_per_minute = DEFAULT_PER_MINUTE if sign_ins_per_minute is None else sign_ins_per_minute

    if not 0 < port < 65536:
        raise UsageMistake("give a port between 1 and 65535", field="port", value=port)
    if max_upload_mb <= 0:
        raise UsageMistake("must be more than 0", field="max_upload_mb", value=f"{max_upload_mb:g}")
    if not session_hours > 0:
        raise UsageMistake("must be more than 0", field="session_hours", value=f"{session_hours:g}")
    if sign_ins_per_minute < 0:
        raise UsageMistake("must be 0 (no limit) or more", field="sign_ins_per_minute", value=sign_ins_per_minute)
    token = token or os.environ.get(TOKEN_ENV) or None
    app = create_app(folder, token=token, max_upload=int(max_upload_mb * 1024 * 1024), lang=lang,
                     session_hours=session_hours, sign_ins_per_minute=sign_ins_per_minute)
    room = app.state.room
    from ..project import open_project
    from ..survey.openrosa import Digest, survey_password

    with open_project(folder) as p:  # the password ODK Collect signs in with (kept in the project)
        room.odk_digest = Digest(survey_password(p))
    # listen first: a clear message if the port is taken, and the banner only once browsers can connect
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise MapathonError(f"cannot listen on {host}:{port} ({e.strerror or e}); try another --port") from None
    out = out or sys.stdout
    hosts = lan_addresses() if host in ("0.0.0.0", "::", "") else [host]
    hosts = hosts or ["127.0.0.1"]
    print(f"Room server for {room.name}", file=out)
    for h in hosts:
        print(f"  volunteers:     http://{h}:{port}/", file=out)
        print(f"  progress board: http://{h}:{port}/board", file=out)
    print(f"  API description: http://{hosts[0]}:{port}/api/openapi.json", file=out)
    print(f"  ODK Collect server (field surveys): http://{hosts[0]}:{port}/odk   "
          f"(user name: the surveyor's name, password: {room.odk_digest.password})", file=out)
    print(f"Organizer token: {room.token}   (keep it to yourself: it allows reset, release, split, roles)",
          file=out)
    print("Stop with Ctrl+C.", file=out, flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, backlog=2048,
                            timeout_keep_alive=30, server_header=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


__all__ = ["run", "lan_addresses", "TOKEN_ENV"]
