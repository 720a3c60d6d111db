"""``python -m mapathon.server PROJECT [--host H] [--port P]``: the room server without the CLI (tests, services)."""

from __future__ import annotations

import argparse
import sys

from ..errors import MapathonError
from . import run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mapathon.server", description=__doc__)
    ap.add_argument("project")
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--token", default=None, help="organizer token (default: $MAPATHON_ORGANIZER_TOKEN, else random)")
    ap.add_argument("--max-upload-mb", type=float, default=20)
    ap.add_argument("--lang", default=None, help="the pages' language, en or fr (default: the project's)")
    ap.add_argument("--session-hours", type=float, default=None,
                    help="a sign-in unused this many hours expires (default 12)")
    ap.add_argument("--sign-ins-per-minute", type=int, default=None,
                    help="new names one address may sign in a minute, 0 for no limit (default 10)")
    a = ap.parse_args(argv)
    try:
        run(a.project, host=a.host, port=a.port, token=a.token, max_upload_mb=a.max_upload_mb, lang=a.lang,
            session_hours=a.session_hours, sign_ins_per_minute=a.sign_ins_per_minute)
    except MapathonError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
