"""The organizer's report as one self-contained HTML page (``--html`` / ``merge --report``).

Everything is inline: CSS in a ``<style>`` element, small maps as inline
SVG; no script, no web font, no image or style sheet fetched from anywhere,
so the page opens the same on a laptop without a connection and can be sent
by e-mail or WhatsApp. The only link to the web is the OpenStreetMap
copyright notice. The file is written atomically.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..errors import MapathonError
from ..fsutil import atomic_path
from ..i18n import Words
from ..render.palette import STATE_STYLE
from .checks import KINDS
from .credit import OUTSIDE, Credit, Tally

_CSS = """
:root { --ink: #1d2630; --muted: #5b6773; --line: #d8dee4; --soft: #f4f6f8; --accent: #0b6e4f;
        --water: #1565c0; --error: #c62828; --warning: #e08a00; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", Arial, sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1100px; padding: 24px 20px 48px; line-height: 1.45; font-size: 15px; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--accent); }
h3 { font-size: 1.05em; margin: 18px 0 6px; }
p.sub, .muted { color: var(--muted); }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 16px 0; }
.card { flex: 1 1 130px; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; background: #fff; }
.card b { display: block; font-size: 1.6em; line-height: 1.2; }
.card.water { border-color: var(--water); } .card.water b { color: var(--water); }
.card.bad b { color: var(--error); }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: 0.93em; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.water, th.water { color: var(--water); }
tr.total td { font-weight: 700; border-top: 2px solid var(--ink); }
.pill { display: inline-block; border-radius: 10px; padding: 0 7px; font-size: 0.85em; background: var(--soft);
        border: 1px solid var(--line); white-space: nowrap; }
.pill.error { color: #fff; background: var(--error); border-color: var(--error); }
.pill.warning { color: #000; background: #ffd180; border-color: var(--warning); }
.pill.READY { background: #e8f5e9; } .pill.MAPPED { background: #fff3e0; } .pill.VALIDATED { background: #e3f2fd; }
.pill.INVALIDATED { background: #fce4ec; }
.maps { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 8px; background: #fff; }
figcaption { font-size: 0.9em; color: var(--muted); }
code { font-size: 0.95em; background: var(--soft); padding: 0 3px; border-radius: 3px; }
.scroll { overflow-x: auto; }
table.compact { font-size: 0.82em; }
footer { margin-top: 40px; color: var(--muted); font-size: 0.85em; border-top: 1px solid var(--line); padding-top: 8px; }
@media print { body { max-width: none; } h2 { break-after: avoid; } tr { break-inside: avoid; } }
"""

_STATE_FILL = {s: v["color"] for s, v in STATE_STYLE.items()}
_CATEGORY_FILL = {"building": "#5d4037", "highway": "#6d4c41", "water": "#1565c0", "poi": "#6a1b9a",
                  "deleted": "#9e9e9e", "other": "#757575"}


def e(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _km(m: float, w: Words) -> str:
    return w.number(m / 1000, 2) if m else "–"


def _n(x, w: Words) -> str:
    return w.number(x) if x else "–"


def _water_cell(t: Tally, w: Words) -> str:
    parts = [f"{n} {e(w.get('water.' + k, k))}" for k, n in t.water_sorted()]
    return ", ".join(parts) if parts else "–"


def _poi_cell(t: Tally, w: Words, limit: int = 4) -> str:
    items = sorted(t.pois.items(), key=lambda kv: (-kv[1], kv[0]))
    names = [k.split("=", 1)[1].replace("_", " ") for k, _n in items[:limit]]
    parts = [f"{n} {e(w.get('poi.' + name, name))}" for name, (_k, n) in zip(names, items)]
    if len(items) > limit:
        parts.append(e(w("report.more", n=sum(n for _k, n in items[limit:]))))
    return ", ".join(parts) if parts else "–"


def _tally_head(w: Words, first: str, extra: str = "") -> str:
    return (f"<tr><th>{e(w(first))}</th>{extra}<th class='n'>{e(w('report.col_buildings'))}</th>"
            f"<th class='n'>{e(w('report.col_roads'))}</th><th class='n'>{e(w('report.col_tracks'))}</th>"
            f"<th class='water'>{e(w('report.col_water'))}</th><th>{e(w('report.col_pois'))}</th>"
            f"<th class='n'>{e(w('report.col_modified'))}</th><th class='n'>{e(w('report.col_deleted'))}</th>"
            f"<th class='n'>{e(w('report.col_findings'))}</th></tr>")


def _tally_cells(t: Tally, w: Words) -> str:
    return (f"<td class='n'>{_n(t.buildings, w)}</td><td class='n'>{_km(t.roads_m, w)}</td>"
            f"<td class='n'>{_km(t.tracks_m, w)}</td><td class='water'>{_water_cell(t, w)}</td>"
            f"<td>{_poi_cell(t, w)}</td><td class='n'>{_n(t.modified, w)}</td>"
            f"<td class='n'>{_n(t.deleted, w)}</td><td class='n'>{_n(t.findings, w)}</td>")


def _svg_map(title: str, tasks: list, points: list, findings: list, words: Words, size: int = 330) -> str:
    """A small inline SVG: task squares by state, the new/changed features, findings as rings."""
    xs = [p[0] for p in points] + [f.lon for f in findings]
    ys = [p[1] for p in points] + [f.lat for f in findings]
    if not xs:
        return ""
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = max(x1 - x0, y1 - y0) * 0.15 + 0.0008
    x0, x1, y0, y1 = x0 - pad, x1 + pad, y0 - pad, y1 + pad
    k = math.cos(math.radians((y0 + y1) / 2))
    w, h = (x1 - x0) * k, (y1 - y0)
    s = size / max(w, h)
    W, H = max(60, w * s), max(60, h * s)

    def px(lon, lat):
        return (lon - x0) * k * s, (y1 - lat) * s

    out = [f"<svg width='{W:.0f}' height='{H:.0f}' viewBox='0 0 {W:.0f} {H:.0f}' "
           f"role='img' aria-label='{e(title)}'><rect width='100%' height='100%' fill='#fafafa'/>"]
    for t in tasks:
        bx0, by0, bx1, by1 = t.geom.bounds
        if bx1 < x0 or bx0 > x1 or by1 < y0 or by0 > y1:
            continue
        coords = list(t.geom.exterior.coords) if t.geom.geom_type == "Polygon" else []
        if not coords:
            continue
        d = " ".join(f"{a:.1f},{b:.1f}" for a, b in (px(*c) for c in coords))
        out.append(f"<polygon points='{d}' fill='{_STATE_FILL.get(t.state, '#fff')}' stroke='#9e9e9e' "
                   f"stroke-width='0.8'><title>{e(words('page.task'))} {t.id} ({e(t.key)}): {e(words.state(t.state))}"
                   "</title></polygon>")
        cx, cy = px(t.geom.centroid.x, t.geom.centroid.y)
        out.append(f"<text x='{cx:.1f}' y='{cy:.1f}' font-size='10' fill='#616161' text-anchor='middle'>{t.id}</text>")
    for lon, lat, _v, cat in points:
        a, b = px(lon, lat)
        out.append(f"<circle cx='{a:.1f}' cy='{b:.1f}' r='2.2' fill='{_CATEGORY_FILL.get(cat, '#757575')}'/>")
    for f in findings:
        a, b = px(f.lon, f.lat)
        col = "#c62828" if f.severity == "error" else "#e08a00"
        out.append(f"<circle cx='{a:.1f}' cy='{b:.1f}' r='6' fill='none' stroke='{col}' stroke-width='2'>"
                   f"<title>{e(f.title)}: {e(f.message)}</title></circle>")
    # scale bar
    metres = (x1 - x0) * k * 111_320 / 4
    nice = 10 ** math.floor(math.log10(max(metres, 1)))
    nice *= 5 if metres / nice >= 5 else (2 if metres / nice >= 2 else 1)
    bar = nice / ((x1 - x0) * k * 111_320) * W
    out.append(f"<line x1='8' y1='{H - 10:.0f}' x2='{8 + bar:.0f}' y2='{H - 10:.0f}' stroke='#000' stroke-width='2'/>"
               f"<text x='8' y='{H - 14:.0f}' font-size='10'>{nice:,.0f} m</text>")
    out.append("</svg>")
    return "".join(out)


def _page_head(add, w: Words, title: str, credit: Credit | None, checks, base: str | None) -> None:
    """The page's head, its title and the line saying what it was made from."""
    now = datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    add(f"<!DOCTYPE html><html lang='{w.lang}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>")
    add(f"<h1>{e(title)}</h1>")
    sub = [e(w("report.made", when=now, version=__version__))]
    if credit is not None:
        sub.append(e(w("report.files_merged", n=len(credit.inputs))
                     + (" " + w("report.onto", base=base) if base else "")))
    if checks is not None:
        sub.append(e(w("report.checked", file=Path(checks.source).name)))
    add(f"<p class='sub'>{' · '.join(sub)}</p>")


def _cards(add, w: Words, credit: Credit, checks) -> None:
    """The big numbers at the top: what was added, by how many volunteers, with how many findings."""
    def card(value: str, key: str, cls: str = "", extra: str = "") -> None:
        add(f"<div class='card{cls}'><b>{value}</b>{e(w(key))}{extra}</div>")
    t = credit.total
    add("<div class='cards'>")
    num = w.number
    card(num(t.buildings), "report.buildings_added")
    card(num((t.roads_m + t.tracks_m) / 1000, 2), "report.km_roads")
    card(num(t.water_total), "report.water_points", " water",
         f"<br><span class='muted'>{_water_cell(t, w)}</span>" if t.water_total else "")
    card(num(t.poi_total), "report.other_pois")
    card(f"{num(t.modified)} / {num(t.deleted)}", "report.modified_deleted")
    card(num(len(credit.volunteers)), "report.volunteers_card")
    if checks is not None:
        nf = sum(f.contributed for f in checks.findings)
        card(num(nf), "report.findings_card", " bad" if nf else "")
    if credit.conflicts:
        card(num(len(credit.conflicts)), "report.conflicts_card", " bad")
    add("</div>")


def _credit_tables(add, w: Words, credit: Credit) -> None:
    """Credit per volunteer, per village, for the field team and per task."""
    add(f"<h2>{e(w('report.volunteers'))}</h2>")
    add("<table>" + _tally_head(w, "report.col_volunteer", f"<th>{e(w('report.col_tasks'))}</th>"))
    for name, tv in credit.volunteers.items():
        tasks = ", ".join(str(x) for x in sorted(tv.tasks, key=str)) or "–"
        add(f"<tr><td>{e(name)}</td><td>{e(tasks)}</td>{_tally_cells(tv, w)}</tr>")
    add(f"<tr class='total'><td>{e(w('report.all'))}</td><td></td>{_tally_cells(credit.total, w)}</tr></table>")
    add(f"<p class='muted'>{e(w('report.measures'))}</p>")

    add(f"<h2>{e(w('report.villages'))}</h2><table>"
        + _tally_head(w, "report.col_village", f"<th class='n'>{e(w('report.col_tasks'))}</th>"))
    for name, tv in credit.villages.items():
        shown = w("outside") if name == OUTSIDE else name
        add(f"<tr><td>{e(shown)}</td><td class='n'>{len(tv.tasks) or '–'}</td>{_tally_cells(tv, w)}</tr>")
    add("</table>")

    if credit.field_team:  # paper pages brought back from the field, and the marks on them
        add(f"<h2>{e(w('marks.field_team'))}</h2><table><tr><th>{e(w('report.col_volunteer'))}</th>"
            f"<th class='n'>{e(w('marks.col_pages'))}</th><th class='n'>{e(w('marks.col_marks'))}</th>"
            f"<th>{e(w('report.col_village'))}</th></tr>")
        for ft in credit.field_team:
            add(f"<tr><td>{e(ft['name'] or '–')}</td><td class='n'>{w.number(ft['pages'])}</td>"
                f"<td class='n'>{w.number(ft['marks'])}</td><td>{e(ft['villages'])}</td></tr>")
        add("</table>")

    add(f"<h2>{e(w('report.tasks'))}</h2><table class='compact'>"
        + _tally_head(w, "report.col_task", f"<th>{e(w('report.col_state'))}</th><th>{e(w('report.col_village'))}"
                      f"</th><th>{e(w('report.col_volunteers'))}</th>"))
    for key, tv in credit.tasks.items():
        info = credit.task_info.get(key, {})
        state = info.get("state", "")
        label = f"{e(key)} <span class='muted'>{e(info.get('key', ''))}</span>" if info else e(key)
        pill = f"<span class='pill {e(state)}'>{e(w.state(state))}</span>" if state else ""
        add(f"<tr><td>{label}</td><td>{pill}</td><td>{e(', '.join(info.get('villages', [])))}</td>"
            f"<td>{e(', '.join(sorted(tv.volunteers)))}</td>{_tally_cells(tv, w)}</tr>")
    add("</table>")


def _tasks_to_look_at(add, w: Words, credit: Credit) -> None:
    """Tasks whose state and data disagree: data on a READY task, a mapped task with no data."""
    add(f"<h2>{e(w('report.to_look_at'))}</h2>")
    add(f"<h3>{e(w('report.ready_with_data'))}</h3>")
    if credit.ready_with_data:
        add(f"<p class='muted'>{e(w('report.ready_with_data_help'))}</p><table><tr>"
            f"<th>{e(w('report.col_task'))}</th><th>{e(w('report.col_address'))}</th>"
            f"<th>{e(w('report.col_village'))}</th><th class='n'>{e(w('report.col_features'))}</th></tr>")
        for r in credit.ready_with_data:
            add(f"<tr><td>{r['id']}</td><td>{e(r['key'])}</td><td>{e(', '.join(r['villages']))}</td>"
                f"<td class='n'>{w.number(r.get('objects', 0))}</td></tr>")
        add("</table>")
    else:
        add(f"<p class='muted'>{e(w('report.none'))}</p>")
    add(f"<h3>{e(w('report.mapped_no_data'))}</h3>")
    if credit.mapped_without_data:
        add(f"<p class='muted'>{e(w('report.mapped_no_data_help'))} "
            "(<code>mapathon submit FILE --as NAME --task ID</code>)</p><table><tr>"
            f"<th>{e(w('report.col_task'))}</th><th>{e(w('report.col_address'))}</th>"
            f"<th>{e(w('report.col_state'))}</th><th>{e(w('report.col_village'))}</th>"
            f"<th>{e(w('report.col_mapped_by'))}</th></tr>")
        for r in credit.mapped_without_data:
            add(f"<tr><td>{r['id']}</td><td>{e(r['key'])}</td><td><span class='pill {e(r['state'])}'>"
                f"{e(w.state(r['state']))}</span></td><td>{e(', '.join(r['villages']))}</td>"
                f"<td>{e(r.get('mapped_by'))}</td></tr>")
        add("</table>")
    else:
        add(f"<p class='muted'>{e(w('report.none'))}</p>")


def _checks_section(add, w: Words, checks) -> None:
    """The quality checks: a count per kind, then the findings (the volunteers' first)."""
    add(f"<h2>{e(w('report.checks'))}</h2>")
    counts = checks.counts()
    contributed = {k: 0 for k in KINDS}
    for f in checks.findings:
        if f.contributed:
            contributed[f.kind] += 1
    add(f"<table><tr><th>{e(w('report.col_finding'))}</th><th>{e(w('report.col_severity'))}</th>"
        f"<th class='n'>{e(w('report.col_on_work'))}</th><th class='n'>{e(w('report.col_whole_file'))}</th></tr>")
    for k, (ttl, sev) in KINDS.items():
        add(f"<tr><td>{e(w.get('kind.' + k, ttl))}</td><td><span class='pill {sev}'>"
            f"{e(w.get('severity.' + sev, sev))}</span></td>"
            f"<td class='n'>{_n(contributed[k], w)}</td><td class='n'>{_n(counts[k], w)}</td></tr>")
    add(f"</table><p class='muted'>{e(w('report.checks_help'))}</p>")
    shown = [f for f in checks.findings if f.contributed] or checks.findings
    limit = 300
    add(f"<table><tr><th>{e(w('report.col_finding'))}</th><th>{e(w('report.col_objects'))}</th>"
        f"<th>{e(w('report.col_task'))}</th><th>{e(w('report.col_village'))}</th>"
        f"<th>{e(w('report.col_volunteer'))}</th><th>{e(w('report.col_details'))}</th>"
        f"<th>{e(w('report.col_where'))}</th></tr>")
    for f in shown[:limit]:
        where = (f"<a href='geo:{f.lat:.6f},{f.lon:.6f}'>{f.lat:.5f}, {f.lon:.5f}</a>"
                 if f.lon is not None else "–")
        flags = []
        if f.detail.get("across_tasks"):
            flags.append(w("report.across_tasks"))
        if f.detail.get("between_volunteers"):
            flags.append(w("report.between_volunteers"))
        add(f"<tr><td><span class='pill {f.severity}'>{e(w.get('kind.' + f.kind, f.title))}</span></td>"
            f"<td><code>{e(f.josm_ids())}</code></td><td>{e(f.task if f.task is not None else '–')}</td>"
            f"<td>{e(f.village or '–')}</td><td>{e(', '.join(f.volunteers) or '–')}</td><td>{e(f.message)}"
            + (f" <span class='muted'>({e(', '.join(flags))})</span>" if flags else "") + f"</td><td>{where}</td></tr>")
    add("</table>")
    if len(shown) > limit:
        add(f"<p class='muted'>{e(w('report.and_more', n=w.number(len(shown) - limit)))}</p>")
    for note in checks.warnings:
        add(f"<p class='muted'>{e(w('report.note', text=note))}</p>")


def _maps_section(add, w: Words, credit: Credit, checks, locator) -> None:
    """A small map per village (at most 8): task squares, new or changed features, findings."""
    maps = []
    villages = {}
    for p in credit.features_xy:
        villages.setdefault(p[2], []).append(p)
    tasks = locator.tasks if locator is not None else []
    for v, pts in sorted(villages.items(), key=lambda kv: (kv[0] == OUTSIDE, kv[0]))[:8]:
        fs = [f for f in (checks.findings if checks is not None else [])
              if f.contributed and f.lon is not None and (f.village or OUTSIDE).split(", ")[0] == v]
        shown = w("outside") if v == OUTSIDE else v
        svg = _svg_map(shown, tasks, pts, fs, w)
        if svg:
            maps.append(f"<figure>{svg}<figcaption>"
                        f"{e(w('report.map_caption', village=shown, n=w.number(len(pts)), f=w.number(len(fs))))}"
                        "</figcaption></figure>")
    if maps:
        key = ", ".join(f"<span style='display:inline-block;width:0.9em;height:0.9em;border:1px solid #777;"
                        f"background:{v['color']}'></span> {e(w.state(s).lower())}"
                        for s, v in STATE_STYLE.items())
        add(f"<h2>{e(w('report.where'))}</h2><p class='muted'>"
            + e(w("report.where_help", key="\x00")).replace("\x00", key)
            + "</p><div class='maps'>" + "".join(maps) + "</div>")


def _conflicts_and_files(add, w: Words, credit: Credit) -> None:
    """The conflicts the merge settled and the files it merged (and skipped)."""
    if credit is not None and credit.conflicts:
        add(f"<h2>{e(w('report.conflicts'))}</h2><table><tr><th>{e(w('report.col_kind'))}</th>"
            f"<th>{e(w('report.col_object'))}</th><th>{e(w('report.col_what'))}</th></tr>")
        for c in credit.conflicts:
            add(f"<tr><td>{e(c['kind'])}</td><td><code>{e(c['type'])} {e(c['id'])}</code></td><td>{e(c['message'])}</td></tr>")
        add("</table>")
    if credit is not None and credit.inputs:
        add(f"<h2>{e(w('report.files'))}</h2><table><tr><th>{e(w('report.col_file'))}</th>"
            f"<th>{e(w('report.col_volunteer'))}</th><th>{e(w('report.col_task'))}</th>"
            f"<th class='n'>{e(w('report.col_objects'))}</th><th class='n'>{e(w('report.col_new'))}</th>"
            f"<th class='n'>{e(w('report.col_modified'))}</th><th class='n'>{e(w('report.col_deleted'))}</th></tr>")
        for i in credit.inputs:
            add(f"<tr><td>{e(i.get('name') or i.get('file'))}</td><td>{e(i.get('volunteer') or '–')}</td>"
                f"<td>{e(i.get('task') or '–')}</td><td class='n'>{w.number(i.get('objects', 0))}</td>"
                f"<td class='n'>{w.number(i.get('create', 0))}</td><td class='n'>{w.number(i.get('modify', 0))}</td>"
                f"<td class='n'>{w.number(i.get('delete', 0))}</td></tr>")
        add("</table>")
        for s in credit.skipped:
            add(f"<p class='muted'>{e(w('report.skipped', file=s.get('file'), reason=s.get('reason')))}</p>")


def render(credit: Credit | None, checks=None, *, title: str | None = None, locator=None,
           base: str | None = None, lang: str | None = None) -> str:
    """The page as a string, its words in *lang* ('en', the default, or 'fr')."""
    w = Words(lang)
    title = title or w("report.title_plain")
    h: list[str] = []
    add = h.append
    _page_head(add, w, title, credit, checks, base)
    if credit is not None:
        _cards(add, w, credit, checks)
        _credit_tables(add, w, credit)
        _tasks_to_look_at(add, w, credit)
    if checks is not None:
        _checks_section(add, w, checks)
    if credit is not None and (credit.features_xy or checks is not None):
        _maps_section(add, w, credit, checks, locator)
    if credit is not None:
        _conflicts_and_files(add, w, credit)
    link = f"<a href='https://www.openstreetmap.org/copyright'>{e(w('report.osm_contributors'))}</a>"
    add("<footer>" + e(w("report.footer", link="\x00")).replace("\x00", link) + "</footer></body></html>\n")
    return "".join(h).replace("<table", "<div class='scroll'><table").replace("</table>", "</table></div>")


def write_html(dest: str | Path, page: str) -> None:
    """Write the page atomically (a temporary file renamed at the end)."""
    dest = Path(dest)
    if not dest.name.lower().endswith((".html", ".htm")):
        raise MapathonError(f"{dest}: the report is an HTML page; its name should end in .html")
    with atomic_path(dest) as tmp:
        tmp.write_text(page, encoding="utf-8")
