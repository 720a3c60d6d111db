"""What the ``check`` and ``report`` commands (and the end of ``merge``) do and print.

Kept out of :mod:`mapathon.cli` so that the CLI stays a thin layer; every
function here takes the ``--project`` option as given (None: the
environment or the current folder) and a rich console to print on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.table import Table

from ..errors import MapathonError
from ..tables import compact_table
from .checks import KINDS, CheckResult, check_file
from .credit import Credit, compute_credit
from .where import NEAR_M


def open_if_project(option):
    """The project named by --project / $MAPATHON_PROJECT (an error if it is not one), else the current
    folder's if it is one, else None: checking a file needs no project."""
    from ..project import ENV_VAR, is_project, open_project

    if option or os.environ.get(ENV_VAR):
        return open_project(option)
    if is_project(None):
        return open_project(None)
    return None


# -- check -----------------------------------------------------------------------------------------------


def run_check(project_option, path: Path, geojson: Path | None = None, *, bbox: str | None = None,
              tasks: str | None = None, village: str | None = None) -> CheckResult:
    """``mapathon check FILE``: check (the whole file, or what lies in --bbox/--tasks/--village), attribute,
    and write the GeoJSON layer if asked."""
    from .where import area_scope

    if geojson is not None and not geojson.name.lower().endswith((".geojson", ".json")):
        raise MapathonError(f"{geojson}: the findings layer is GeoJSON; its name should end in .geojson")
    project = open_if_project(project_option)
    try:
        scope = area_scope(project, bbox=bbox, tasks=tasks, village=village)
        result = check_file(path, project=project, scope=scope)
    finally:
        if project is not None:
            project.close()
    if geojson is not None:
        result.stats["geojson"] = str(geojson)
        result.write_geojson(geojson)
    return result


def print_check(result: CheckResult, console, limit: int = 25, *, title: str | None = None) -> None:
    st = result.stats
    counts = result.counts()
    contributed = {k: 0 for k in KINDS}
    for f in result.findings:
        if f.contributed:
            contributed[f.kind] += 1
    show_contrib = result.provenance != "none"
    table = Table("finding", "severity", *(["on contributions"] if show_contrib else []), "count",
                  title=title or f"Checked {Path(result.source).name}: {st.get('buildings', 0):,} buildings, "
                                 f"{st.get('highways', 0):,} highways, {st.get('ways', 0):,} ways",
                  box=box.SIMPLE_HEAD)
    for k, (ttl, sev) in KINDS.items():
        style = "bold red" if counts[k] and sev == "error" else None
        table.add_row(ttl, sev, *([f"{contributed[k]:,}"] if show_contrib else []), f"{counts[k]:,}", style=style)
    console.print(table)
    shown = [f for f in result.findings if f.contributed] if show_contrib else result.findings
    if shown and limit:
        t2 = Table("finding", "objects", "task", "village", "volunteer", "details", box=box.SIMPLE_HEAD,
                   title="Findings" + (" on the volunteers' work" if show_contrib else ""))
        for f in shown[:limit]:
            flags = [x for x, key in (("across tasks", "across_tasks"), ("between volunteers", "between_volunteers"))
                     if f.detail.get(key)]
            t2.add_row(f.title, f.josm_ids(), str(f.task) if f.task is not None else "-", f.village or "-",
                       ", ".join(f.volunteers) or "-", f.message + (f" ({', '.join(flags)})" if flags else ""))
        console.print(t2)
        if len(shown) > limit:
            console.print(f"... and {len(shown) - limit:,} more (--json, or the GeoJSON layer)")
    if st.get("scope") == "changes":
        console.print(f"Checked what the volunteers created or modified, and the base's buildings and highways "
                      f"within {NEAR_M:.0f} m of it ({st.get('neighbours_read', 0):,}); --check all checks the whole "
                      "snapshot", soft_wrap=True)
    elif st.get("scope"):
        console.print(f"Checked only what lies in {st['scope']}", soft_wrap=True)
    for w in result.warnings:
        console.print(f"[yellow]Note:[/] {w}", soft_wrap=True)
    extra = f"; findings layer {st['geojson']}" if st.get("geojson") else ""
    console.print(f"{len(result.findings):,} finding(s) in {result.seconds:.2f} s{extra}")


# -- credit ----------------------------------------------------------------------------------------------


def print_credit(credit: Credit, console) -> None:
    def row(name, t, *first):
        water = sum(n for _, n in t.water_sorted())
        return (str(name), *first, f"{t.buildings:,}", f"{t.roads_m / 1000:,.2f}", f"{t.tracks_m / 1000:,.2f}",
                f"{water:,}", f"{t.poi_total:,}", f"{t.modified:,}", f"{t.deleted:,}", f"{t.findings:,}")

    cols = ("bldgs", "roads", "tracks", "water", "POIs", "mod.", "del.", "finds")
    table = compact_table("volunteer", "tasks", *cols,
                          title="Credit: new and changed data per volunteer (roads and tracks in km)")
    for name, t in credit.volunteers.items():
        table.add_row(*row(name, t, f"{len(t.tasks):,}"))
    table.add_row(*row("All", credit.total, ""), style="bold")
    console.print(table)
    for name, t in [*credit.volunteers.items(), ("All", credit.total)]:
        water = ", ".join(f"{n} {k}" for k, n in t.water_sorted())
        tasks = ", ".join(str(x) for x in sorted(t.tasks, key=str))
        if name != "All" and tasks:
            console.print(f"{name}: tasks {tasks}" + (f"; water points: {water}" if water else ""), soft_wrap=True)
        elif name == "All" and water:
            console.print(f"Water points in all: {water}", soft_wrap=True)
    vt = compact_table("village", *cols)
    for name, t in credit.villages.items():
        vt.add_row(*row(name, t))
    console.print(vt)
    for ft in credit.field_team:  # paper pages brought back (mapathon scan)
        console.print(f"Field team: {ft['name'] or '(nobody named)'} brought {ft['pages']} page(s) with "
                      f"{ft['marks']} mark(s)" + (f" ({ft['villages']})" if ft['villages'] else ""), soft_wrap=True)
    if credit.ready_with_data:
        console.print("Tasks that received data but are still READY: " + ", ".join(
            f"{r['id']} ({r['key']}, {', '.join(r['villages']) or '-'})" for r in credit.ready_with_data), soft_wrap=True)
    for sk in credit.skipped:
        console.print(f"[yellow]Not counted[/] {sk.get('file')}: {sk.get('reason')}", soft_wrap=True)
    if credit.mapped_without_data:
        console.print("Tasks marked mapped that received no data: " + ", ".join(
            f"{r['id']} ({r['state']}, {r['mapped_by'] or '-'})" for r in credit.mapped_without_data[:30])
            + (f" ... and {len(credit.mapped_without_data) - 30} more" if len(credit.mapped_without_data) > 30 else ""),
            soft_wrap=True)


@dataclass
class Reported:
    """The outcome of a report: credit, checks (if a snapshot was checked) and the files written."""

    credit: Credit
    checks: CheckResult | None
    html: Path | None = None
    geojson: Path | None = None

    def as_dict(self) -> dict:
        return {"credit": self.credit.as_dict(), "checks": self.checks.as_dict() if self.checks else None,
                "html": str(self.html) if self.html else None, "findings_geojson": str(self.geojson) if self.geojson else None}


def _check_names(html: Path | None, geojson: Path | None) -> None:
    if html is not None and not html.name.lower().endswith((".html", ".htm")):
        raise MapathonError(f"{html}: the report is an HTML page; its name should end in .html")
    if geojson is not None and not geojson.name.lower().endswith((".geojson", ".json")):
        raise MapathonError(f"{geojson}: the findings layer is GeoJSON; its name should end in .geojson")


#: ``merge --check`` and ``report --check``: what the checks read of the snapshot.
CHECK_MODES = ("changes", "all", "none")


def check_mode(mode: str | None) -> str:
    mode = (mode or "changes").strip().lower()
    if mode not in CHECK_MODES:
        raise MapathonError(f"--check {mode}: give changes (what the volunteers changed and the data around it), "
                            "all (the whole snapshot) or none")
    return mode


def _merge_checks(result, snapshot: Path, locator, check: str) -> CheckResult:
    """The checks of a merge's snapshot: of its changes and what lies around them, or all of it."""
    from .where import MergeProvenance, merge_scope

    scope = merge_scope(result) if check == "changes" else None
    return check_file(snapshot, provenance=MergeProvenance(result), locator=locator, scope=scope)


def _finish(result, project, snapshot: Path | None, *, html: Path | None, geojson: Path | None,
            base: Path | None, lang: str | None = None, check: str = "changes") -> Reported:
    from ..parallel import Helper, paused_gc
    from .report_html import render, write_html
    from .where import Locator, change_positions

    locator = Locator(project) if project is not None else None
    checks = None
    with paused_gc():
        change_positions(result)  # before the helper: the checks' scope and the credit both use them
        # the checks (reading the snapshot) in a helper process while the credit is counted here
        job = Helper(lambda: _merge_checks(result, snapshot, locator, check)) \
            if snapshot is not None and check != "none" else None
        try:
            credit = compute_credit(result, locator)
            if job is not None:
                checks = job.result()
        finally:
            if job is not None:
                job.close()
    if checks is not None:
        credit.count_findings(checks)
        if geojson is not None:
            checks.stats["geojson"] = str(geojson)
            checks.write_geojson(geojson)
    if project is not None:  # the field team is credited for the paper pages they brought back
        from ..scan.marks import field_team

        credit.field_team = field_team(project.conn)
    if html is not None:
        from ..i18n import Words, resolve_lang

        lang = resolve_lang(project, lang)
        words = Words(lang)
        title = words("report.title", project=project.name) if project is not None else words("report.title_plain")
        write_html(html, render(credit, checks, title=title, locator=locator,
                                base=base.name if base else None, lang=lang))
    return Reported(credit, checks, html, geojson)


def after_merge(project_option, result, output: Path, *, html: Path | None = None,
                geojson: Path | None = None, lang: str | None = None, check: str = "changes") -> Reported:
    """Run by ``merge`` once its files are written: check the snapshot (its changes and what lies around them,
    all of it, or nothing: *check*), count the credit, write the report."""
    from ..project import is_project, open_project

    check = check_mode(check)
    _check_names(html, geojson)
    if geojson is not None and check == "none":
        raise MapathonError("--findings needs the checks: not with --check none")
    project = open_project(project_option) if is_project(project_option) else None  # as merge itself decides
    try:
        return _finish(result, project, Path(output), html=html, geojson=geojson, base=result.base, lang=lang,
                       check=check)
    finally:
        if project is not None:
            project.close()


def run_report(project_option, *, base: Path | None = None, merged: Path | None = None, html: Path | None = None,
               geojson: Path | None = None, lang: str | None = None, check: str = "changes") -> Reported:
    """``mapathon report``: the project's contributions merged again (nothing written) for the credit;
    with ``--merged``, that snapshot checked too, its findings credited to the volunteers."""
    from ..osm.merge import plan_merge
    from ..osm.submit import merge_inputs
    from ..project import open_project

    check = check_mode(check)
    _check_names(html, geojson)
    if geojson is not None and (merged is None or check == "none"):
        raise MapathonError("--geojson needs --merged SNAPSHOT (the file to check)")
    if merged is not None and not merged.is_file():
        raise MapathonError(f"{merged}: no such file")
    with open_project(project_option) as project:
        specs = merge_inputs(project)
        if not specs:
            raise MapathonError("the project has no contributions yet: 'mapathon submit FILE --as NAME' first")
        result = plan_merge(specs, base=base, skip_bad=True)
        return _finish(result, project, merged, html=html, geojson=geojson, base=base, lang=lang, check=check)


def print_after_merge(rep: Reported, console) -> None:
    if rep.checks is not None:
        print_check(rep.checks, console, limit=15, title=f"Quality checks of {Path(rep.checks.source).name}")
    print_credit(rep.credit, console)
    written = [str(p) for p in (rep.html, rep.geojson) if p is not None]
    if written:
        console.print("Wrote " + ", ".join(written))
