"""What a user typed, turned into villages, tasks and boxes: one grammar for every command and the room server.

* a village: its name, ignoring case, accents, extra spaces, hyphens and apostrophes
  (``dianguirde``, ``DIANGUIRDÉ``, ``Dianguirdé``); a close misspelling is refused with
  "did you mean" (:class:`~mapathon.errors.NoSuchVillage`);
* tasks: numbers, ranges and z/x/y addresses, separated by commas (``3``, ``3-7``,
  ``3,5,9-12``, ``16/31126/30100``);
* a box: ``W,S,E,N`` in degrees.

Errors carry the field (``village``, ``tasks``, ``bbox``), never a command-line flag.
"""

from __future__ import annotations

import math
import re
from . import names
from .errors import MapathonError, NoSuchVillage, UsageMistake

MAX_RANGE = 100_000


def village_key(name: str) -> str:
    """The key two village names match on: :func:`mapathon.names.key`, hyphens and apostrophes as spaces.

    >>> village_key("  Dianguirdé-Fouta ") == village_key("DIANGUIRDE  fouta")
    True
    """
    return " ".join(names.key(name).replace("-", " ").replace("'", " ").replace("’", " ").split())


def _names(project_or_names) -> list[str]:
    if hasattr(project_or_names, "villages"):
        return [v["name"] for v in project_or_names.villages() if v["name"]]
    return [n for n in project_or_names if n]


def find_village(project_or_names, text: str) -> str | None:
    """The village name that *text* names (case, accents and spaces aside), or None.

    >>> find_village(["Dianguirdé", "Torodo"], "dianguirde")
    'Dianguirdé'
    >>> find_village(["Dianguirdé"], "Dianguirde X") is None
    True
    """
    wanted = village_key(text or "")
    for name in _names(project_or_names):
        if village_key(name) == wanted:
            return name
    return None


def suggest_village(project_or_names, text: str) -> str | None:
    """The village *text* is probably a typo of, or None.

    >>> suggest_village(["Dianguirdé", "Torodo"], "Dianguirdee")
    'Dianguirdé'
    """
    return names.suggest(text, _names(project_or_names))


def match_village(project_or_names, text: str) -> str:
    """The village name that *text* names; else :class:`NoSuchVillage` with the closest one.

    *project_or_names* is a project (its villages) or a list of names.

    >>> match_village(["Dianguirdé", "Torodo"], "  DIANGUIRDE ")
    'Dianguirdé'
    >>> match_village(["Dianguirdé", "Torodo"], "Dianguirdi")
    Traceback (most recent call last):
    ...
    mapathon.errors.NoSuchVillage: village 'Dianguirdi': no such village; did you mean 'Dianguirdé'? (villages: Dianguirdé, Torodo)
    """
    choices = _names(project_or_names)
    found = find_village(choices, text)
    if found is not None:
        return found
    if not choices:
        raise NoSuchVillage(text, detail="this project has no named villages")
    raise NoSuchVillage(text, suggestion=names.suggest(text, choices), choices=choices)


_ADDRESS = re.compile(r"(\d{1,2})/(\d+)/(\d+)")
_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")


def parse_tasks(text: str) -> list[int | str]:
    """Task numbers (ints) and z/x/y addresses (strings), in the order given, without repeats.

    >>> parse_tasks("3")
    [3]
    >>> parse_tasks("3-7")
    [3, 4, 5, 6, 7]
    >>> parse_tasks("3, 5,9-12")
    [3, 5, 9, 10, 11, 12]
    >>> parse_tasks("16/31126/30100,4")
    ['16/31126/30100', 4]
    >>> parse_tasks("3;4")
    Traceback (most recent call last):
    ...
    mapathon.errors.UsageMistake: tasks '3;4': '3;4' is no task number, range or z/x/y address (e.g. 3,5-8,16/31126/30100)
    """
    out: list[int | str] = []
    for part in (p.strip() for p in str(text or "").split(",")):
        if not part:
            continue
        if part.isdigit():
            out.append(int(part))
        elif m := _RANGE.fullmatch(part):
            a, b = int(m.group(1)), int(m.group(2))
            if b < a or b - a > MAX_RANGE:
                raise UsageMistake(f"{part} is not a valid range of task numbers (low-high, at most {MAX_RANGE})",
                                   field="tasks", value=text)
            out.extend(range(a, b + 1))
        elif m := _ADDRESS.fullmatch(part):
            out.append(f"{int(m.group(1))}/{int(m.group(2))}/{int(m.group(3))}")
        else:
            raise UsageMistake(f"'{part}' is no task number, range or z/x/y address (e.g. 3,5-8,16/31126/30100)",
                               field="tasks", value=text)
    if not out:
        raise UsageMistake("give task numbers, ranges or z/x/y addresses, e.g. 3,5-8", field="tasks", value=text)
    return list(dict.fromkeys(out))


def resolve_tasks(project, text: str) -> list:
    """The tasks (:class:`mapathon.tasks.lifecycle.Task`) that *text* names, in its order.

    Refuses the whole selection, naming the missing ones, if any is no task of the project."""
    from .tasks import lifecycle

    refs = parse_tasks(text)
    ids = [r for r in refs if isinstance(r, int)]
    found = lifecycle.get_tasks(project, ids)
    by_key: dict[str, object] = {}
    if any(isinstance(r, str) for r in refs):
        by_key = {t.key: t for t in lifecycle.list_tasks(project)}
    tasks, missing = [], []
    for r in refs:
        t = found.get(r) if isinstance(r, int) else by_key.get(r)
        (tasks if t is not None else missing).append(t if t is not None else r)
    if missing:
        if not project.conn.execute("SELECT 1 FROM tasks LIMIT 1").fetchone():
            raise MapathonError("the project has no tasks yet; run 'mapathon grid' first", field="tasks", value=text)
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise MapathonError(f"no such task(s): {shown}", field="tasks", value=text)
    return tasks


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """A box ``W,S,E,N`` in degrees: (west, south, east, north).

    West must be less than east (a box across the antimeridian is refused: give two boxes),
    south less than north, longitudes within ±180 and latitudes within -80..84 (the UTM zones).

    >>> parse_bbox("9.50, 47.12,9.54,47.15")
    (9.5, 47.12, 9.54, 47.15)
    >>> parse_bbox("9.5,47.1,nan,47.2")
    Traceback (most recent call last):
    ...
    mapathon.errors.UsageMistake: bbox '9.5,47.1,nan,47.2': give four finite numbers W,S,E,N in degrees (e.g. 9.50,47.12,9.54,47.15)
    """
    try:
        values = [float(v) for v in str(text).replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise UsageMistake("give four finite numbers W,S,E,N in degrees (e.g. 9.50,47.12,9.54,47.15)",
                           field="bbox", value=text)
    w, s, e, n = values
    if not (-180 <= w <= 180 and -180 <= e <= 180):
        raise UsageMistake("longitudes must be within -180 and 180", field="bbox", value=text)
    if not (-80 <= s <= 84 and -80 <= n <= 84):
        raise UsageMistake("latitudes must be within -80 and 84 (the UTM zones)", field="bbox", value=text)
    if w >= e:
        raise UsageMistake("west must be less than east (a box across the antimeridian is not supported: "
                           "give one on each side)", field="bbox", value=text)
    if s >= n:
        raise UsageMistake("south must be less than north", field="bbox", value=text)
    return w, s, e, n


def organizer_by_default(project, actor: str | None) -> str:
    """Who does an organizer's action: *actor* if given; else the project's organizer if it has
    exactly one; else 'organizer' if it has none (a project without roles). With several
    organizers, the caller must say which."""
    if actor:
        return actor
    rows = project.conn.execute("SELECT name FROM volunteers WHERE is_organizer = 1 ORDER BY name").fetchall()
    if not rows:
        return "organizer"
    if len(rows) == 1:
        return rows[0][0]
    raise UsageMistake(f"the project has {len(rows)} organizers ({', '.join(r[0] for r in rows)}): say which",
                       field="as", value=None)
