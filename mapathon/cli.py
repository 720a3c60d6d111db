"""The ``mapathon`` command line: parses arguments and prints. All logic lives in the modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import click
import typer
import typer.core
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import MapathonError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class _Group(typer.core.TyperGroup):
    """Turns user mistakes into one line on stderr and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MapathonError as e:
            err_console.print(f"[bold red]Error:[/] {e}", soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except OSError as e:
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            err_console.print(f"[bold red]Error:[/] {where}{e.strerror or e}", soft_wrap=True)
            raise typer.Exit(1) from None


def _app(help: str) -> typer.Typer:
    return typer.Typer(cls=_Group, help=help, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False, rich_markup_mode=None)


app = _app("Offline-first toolkit for mapathons and field mapping on OpenStreetMap.")
volunteer_app = _app("Manage the project's volunteers (mappers, validators, organizers).")
export_app = _app("Export project data to files for QGIS, JOSM, GPS units and spreadsheets.")
app.add_typer(volunteer_app, name="volunteer")
app.add_typer(export_app, name="export")

ProjectOpt = typer.Option(None, "--project", "-p", envvar="MAPATHON_PROJECT",
                          help="Project folder (default: $MAPATHON_PROJECT, else the current folder).")
AsOpt = typer.Option(..., "--as", help="The volunteer doing this (their name).")
CommentOpt = typer.Option(None, "--comment", "-m", help="A comment kept in the task's history.")
JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts instead of tables.")


def _version(value: bool):
    if value:
        console.print(f"mapathon {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    project: Optional[Path] = ProjectOpt,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
):
    ctx.obj = {"project": project}


def _open(ctx: typer.Context):
    from .project import open_project

    return open_project(ctx.find_root().obj["project"])


def _utc(stamp: str | None) -> str:
    return f"{stamp[:16].replace('T', ' ')} UTC" if stamp else "-"


def _task_line(t) -> str:
    where = f" — {', '.join(t.villages)}" if t.villages else ""
    return f"task {t.id} ({t.key}){where}"


# -- project -----------------------------------------------------------------------------------------


@app.command()
def init(
    directory: Path = typer.Argument(..., help="Folder to create (it may exist, empty or not)."),
    name: str = typer.Option(..., "--name", help="Project name, e.g. 'Dianguirdé 2026'."),
    aoi: Path = typer.Option(..., "--aoi", help="Area of interest: GeoJSON, GeoPackage, Shapefile, "
                             ".osm/.osm.pbf (with --relation) or a villages CSV name,lat,lon (with --radius)."),
    relation: Optional[int] = typer.Option(None, "--relation", help="Boundary relation id, for an OSM file."),
    radius: Optional[float] = typer.Option(None, "--radius", help="Metres to map around each village point."),
    max_area: float = typer.Option(5000.0, "--max-area", help="Refuse an area larger than this (km²)."),
    organizer: Optional[str] = typer.Option(None, "--organizer", help="Register this person as the first organizer."),
):
    """Create a project folder from an area of interest."""
    from .aoi import read_aoi
    from .project import init_project
    from .tasks import volunteers

    if organizer is not None:  # checked before anything is created
        try:
            organizer = volunteers.check_name(organizer)
        except MapathonError:
            raise MapathonError(f"--organizer {organizer!r}: give a name of 1 to 80 printable characters") from None
    area = read_aoi(aoi, relation=relation, radius=radius, max_area_km2=max_area)
    for w in area.warnings:
        err_console.print(f"[yellow]Warning:[/] {w}", soft_wrap=True)
    with init_project(directory, name, area, actor=organizer or "organizer") as project:
        if organizer:
            volunteers.add(project, organizer, organizer=True, validator=True, actor=organizer)
        console.print(f"Created project [bold]{project.name}[/] in {directory}")
        console.print(f"Area of interest: {area.area_km2:,.1f} km², {len(area.villages)} named area(s)"
                      + (": " + ", ".join(v.name for v in area.villages[:20]) if area.villages else ""))
        console.print("Next: mapathon --project {} grid --zoom 16".format(directory))


@app.command()
def info(ctx: typer.Context, as_json: bool = JsonOpt):
    """Show the project: name, area, villages, grid."""
    from . import geo

    with _open(ctx) as p:
        aoi = p.aoi_geom()
        grid = p.conn.execute(
            "SELECT data FROM events WHERE action = 'grid.create' ORDER BY seq DESC LIMIT 1").fetchone()
        villages = p.villages()
        out = {
            "name": p.name,
            "folder": str(p.path),
            "project_id": p.id,
            "created": p.meta("created"),
            "aoi_km2": round(geo.area_m2(aoi) / 1e6, 2),
            "aoi_bounds": [round(v, 6) for v in aoi.bounds],
            "villages": [v["name"] for v in villages],
            "grid": json.loads(grid[0]) if grid else None,
            "tasks": p.conn.execute("SELECT COUNT(*) FROM tasks WHERE state != 'SPLIT'").fetchone()[0],
        }
    if as_json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return
    console.print(f"[bold]{out['name']}[/]  ({out['folder']})")
    console.print(f"Area of interest: {out['aoi_km2']:,} km², bounds {out['aoi_bounds']}")
    console.print(f"Villages ({len(out['villages'])}): {', '.join(out['villages']) or '-'}")
    console.print(f"Tasks: {out['tasks']}" + (f" — grid {out['grid']}" if out["grid"] else " — no grid yet"))


@app.command()
def grid(
    ctx: typer.Context,
    zoom: Optional[int] = typer.Option(None, "--zoom", "-z", help="Web-mercator tile zoom (TM uses 16-18)."),
    size: Optional[float] = typer.Option(None, "--size", help="Metric squares of this many metres (local UTM zone)."),
    from_file: Optional[Path] = typer.Option(None, "--from", help="Tasks from a Tasking Manager grid or polygon file."),
    min_overlap: float = typer.Option(1.0, "--min-overlap", help="Keep cells overlapping the area by more than this (m²)."),
    clip: bool = typer.Option(False, "--clip", help="Clip border cells to the area of interest."),
    max_tasks: int = typer.Option(300_000, "--max-tasks", help="Refuse a grid with more tasks (guards a mistyped zoom)."),
    force: bool = typer.Option(False, "--force", help="Replace a grid that already has recorded work."),
    actor: str = typer.Option("organizer", "--as", help="Who makes the grid."),
):
    """Cover the area of interest with imagery tasks."""
    from .tasks import gridding

    chosen = [o for o in (zoom, size, from_file) if o is not None]
    if len(chosen) != 1:
        raise MapathonError("give exactly one of --zoom Z, --size METRES or --from FILE")
    with _open(ctx) as p:
        n, desc = gridding.make_grid(p, zoom=zoom, size=size, from_file=from_file, min_overlap=min_overlap,
                                     clip=clip, max_tasks=max_tasks, force=force, actor=actor)
    console.print(f"Grid of {n:,} tasks ({desc})")


@app.command()
def split(ctx: typer.Context, task: str = typer.Argument(..., help="Task number or z/x/y."),
          actor: str = AsOpt, comment: Optional[str] = CommentOpt):
    """Replace a task by four smaller ones (tile children, or quadrants)."""
    from .tasks import lifecycle

    with _open(ctx) as p:
        kids = lifecycle.split(p, task, actor, comment=comment)
    console.print(f"Task {task} split into: " + ", ".join(f"{k.id} ({k.key})" for k in kids))


# -- lifecycle ------------------------------------------------------------------------------------------


@app.command()
def claim(
    ctx: typer.Context,
    task: Optional[str] = typer.Argument(None, help="Task number or z/x/y (or use --next)."),
    actor: str = AsOpt,
    next_: bool = typer.Option(False, "--next", help="Give me a task: invalidated first, then ready, away from locked ones."),
    village: Optional[str] = typer.Option(None, "--village", help="With --next: a task in this village."),
    hours: float = typer.Option(2.0, "--hours", help="How long the lock lasts."),
    comment: Optional[str] = CommentOpt,
):
    """Lock a task for mapping (or, for a validator, a mapped task for validation)."""
    from .tasks import lifecycle

    if next_ == (task is not None):
        raise MapathonError("give a TASK or --next (not both)")
    if village and not next_:
        raise MapathonError("--village goes with --next")
    with _open(ctx) as p:
        if next_:
            t = lifecycle.claim_next(p, actor, village=village, hours=hours)
        else:
            t = lifecycle.claim(p, task, actor, hours=hours, comment=comment)
    what = "mapping" if t.state == lifecycle.LOCKED_FOR_MAPPING else "validation"
    console.print(f"{t.locked_by} holds {_task_line(t)} for {what} until {_utc(t.lock_expires)}")


def _simple(fn_name: str, verb: str):
    def command(ctx: typer.Context, task: str = typer.Argument(..., help="Task number or z/x/y."),
                actor: str = AsOpt, comment: Optional[str] = CommentOpt):
        from .tasks import lifecycle

        with _open(ctx) as p:
            t = getattr(lifecycle, fn_name)(p, task, actor, comment=comment)
        console.print(f"{_task_line(t)} {verb}: now {t.state}")

    return command


app.command("release", help="Give a locked task back without a result.")(_simple("release", "released"))
app.command("done", help="Mark the task you are mapping as MAPPED.")(_simple("done", "done"))
app.command("badimagery", help="Mark a task as impossible to map from the imagery.")(_simple("badimagery", "marked"))
app.command("reset", help="Organizers: put a task back to READY.")(_simple("reset", "reset"))


@app.command()
def validate(
    ctx: typer.Context,
    task: str = typer.Argument(..., help="Task number or z/x/y."),
    actor: str = AsOpt,
    accept: Optional[bool] = typer.Option(None, "--accept/--reject", help="Accept (VALIDATED) or reject (INVALIDATED)."),
    comment: Optional[str] = CommentOpt,
):
    """Validate a mapped task (validators; nobody validates their own work)."""
    from .tasks import lifecycle

    if accept is None:
        raise MapathonError("say --accept or --reject")
    with _open(ctx) as p:
        t = lifecycle.validate(p, task, actor, accept=accept, comment=comment)
    console.print(f"{_task_line(t)}: now {t.state}")


@app.command()
def history(ctx: typer.Context, task: str = typer.Argument(..., help="Task number or z/x/y."), as_json: bool = JsonOpt):
    """Show everything that happened to a task (and to the task it was split from)."""
    from .tasks import lifecycle

    with _open(ctx) as p:
        t, evs = lifecycle.history(p, task)
    if as_json:
        print(json.dumps({"task": t.id, "key": t.key, "state": t.state, "events": [e.as_dict() for e in evs]},
                         ensure_ascii=False, indent=2))
        return
    console.print(f"[bold]{_task_line(t)}[/]: {t.state}" + (f", locked by {t.locked_by} until {_utc(t.lock_expires)}"
                                                            if t.locked_by else ""))
    table = Table("when (UTC)", "who", "what", "from", "to", "comment")
    for e in evs:
        table.add_row(e.ts[:19].replace("T", " "), e.actor, e.action + ("" if e.task == t.key else f" [{e.task}]"),
                      e.from_state or "", e.to_state or "", e.comment or "")
    console.print(table)


@app.command("tasks")
def tasks_cmd(
    ctx: typer.Context,
    state: Optional[str] = typer.Option(None, "--state", help="Only tasks in this state."),
    village: Optional[str] = typer.Option(None, "--village", help="Only tasks in this village."),
    as_json: bool = JsonOpt,
):
    """List tasks with their state, village and volunteers."""
    from .tasks import lifecycle

    if state and state.upper() not in lifecycle.STATES:
        raise MapathonError(f"--state {state}: unknown (states: {', '.join(lifecycle.STATES)})")
    with _open(ctx) as p:
        ts = lifecycle.list_tasks(p, state.upper() if state else None, village)
    rows = [{"id": t.id, "key": t.key, "state": t.state, "village": list(t.villages), "locked_by": t.locked_by,
             "mapped_by": t.mapped_by, "validated_by": t.validated_by} for t in ts]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("id", "address", "state", "village", "locked by", "mapped by", "validated by")
    for r in rows:
        table.add_row(str(r["id"]), r["key"], r["state"], ", ".join(r["village"]), r["locked_by"] or "",
                      r["mapped_by"] or "", r["validated_by"] or "")
    console.print(table)
    console.print(f"{len(rows)} task(s)")


# -- volunteers -------------------------------------------------------------------------------------------


@volunteer_app.command("add")
def volunteer_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The volunteer's name, as they will type it with --as."),
    osm_user: Optional[str] = typer.Option(None, "--osm-user", help="Their OpenStreetMap user name."),
    validator: bool = typer.Option(False, "--validator", help="May validate others' tasks."),
    organizer: bool = typer.Option(False, "--organizer", help="May release, reset and split any task."),
):
    """Register a volunteer, or give roles to one already registered."""
    from .tasks import volunteers

    with _open(ctx) as p:
        v, created = volunteers.add(p, name, osm_user=osm_user, validator=validator, organizer=organizer)
    console.print(f"{'Added' if created else 'Updated'} {v.name} ({v.roles})")


@volunteer_app.command("list")
def volunteer_list(ctx: typer.Context, as_json: bool = JsonOpt):
    """List the project's volunteers and their roles."""
    from .tasks import volunteers

    with _open(ctx) as p:
        vs = volunteers.list_all(p)
    if as_json:
        print(json.dumps([{"name": v.name, "osm_user": v.osm_user, "validator": v.is_validator,
                           "organizer": v.is_organizer} for v in vs], ensure_ascii=False, indent=2))
        return
    table = Table("name", "OSM user", "roles")
    for v in vs:
        table.add_row(v.name, v.osm_user or "", v.roles)
    console.print(table)


# -- progress and exports ---------------------------------------------------------------------------------


@app.command()
def status(
    ctx: typer.Context,
    as_json: bool = JsonOpt,
    map_png: Optional[Path] = typer.Option(None, "--map", help="Also draw the grid coloured by state into this PNG."),
):
    """Progress per village and overall, and each volunteer's work."""
    from .tasks import progress

    with _open(ctx) as p:
        st = progress.status(p)
        if map_png:
            from .render.progress_map import render_progress_map

            render_progress_map(p, st, map_png)
    if as_json:
        print(json.dumps(st.as_dict(), ensure_ascii=False, indent=2))
        return
    states = progress.COUNTED_STATES
    short = {"READY": "ready", "LOCKED_FOR_MAPPING": "mapping", "MAPPED": "mapped",
             "LOCKED_FOR_VALIDATION": "validating", "VALIDATED": "valid.", "INVALIDATED": "invalid.",
             "BADIMAGERY": "bad img"}
    table = Table("village", "tasks", *(short[s] for s in states), "mapped %", "validated %", title=st.project)
    for c in st.villages + [st.overall]:
        style = "bold" if c is st.overall else None
        table.add_row("All" if c is st.overall else c.name, str(c.total), *(str(c.states[s]) for s in states),
                      f"{c.mapped_pct:.1f}", f"{c.validated_pct:.1f}", style=style)
    console.print(table)
    if st.volunteers:
        vt = Table("volunteer", "roles", "mapped", "validated", "invalidated", "time locked", "holding now")
        for v in st.volunteers:
            h, m = divmod(round(v.locked_hours * 60), 60)
            vt.add_row(v.name, v.roles, str(v.mapped), str(v.validated), str(v.invalidated), f"{h}:{m:02d}",
                       v.holding or "")
        console.print(vt)
    if st.expired:
        console.print(f"Released {len(st.expired)} expired lock(s): {', '.join(st.expired)}")
    if map_png:
        console.print(f"Progress map written to {map_png}")


@export_app.command("tasks")
def export_tasks_cmd(
    ctx: typer.Context,
    output: Path = typer.Option(..., "--output", "-o", help="File to write."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="geojson, gpkg, shp, gpx, osm or csv (default: from the extension)."),
    include_split: bool = typer.Option(False, "--include-split", help="Also write split (replaced) tasks."),
):
    """Export the task grid with each task's state, village and volunteers."""
    from .exports.tasks import export_tasks

    with _open(ctx) as p:
        n = export_tasks(p, output, fmt, include_split=include_split)
    console.print(f"Wrote {n} tasks to {output}")


def main() -> None:
    """Entry point of the ``mapathon`` command."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("Interrupted")
        sys.exit(130)
