"""The ``mapathon`` command line: parses arguments and prints. All logic lives in the modules."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Optional

import click
import typer
import typer.core
from rich.console import Console
from rich.table import Table

from . import __version__
from .cli_options import flag_for, hidden_alias, option
from .errors import MapathonError, UsageMistake
from .tables import compact_table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class _Group(typer.core.TyperGroup):
    """Turns user mistakes into one line on stderr and a non-zero exit, never a traceback.

    Exit codes: 2 a wrong use of the command (click's usage error, or a library error about the
    form of a value), 3 a change the rules refuse, 1 any other failure, 130 interrupted (Ctrl-C)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MapathonError as e:
            # the library names the field ('village'); here it is the flag ('--village')
            err_console.print(f"[bold red]Error:[/] {e.with_label(flag_for(e.field))}", soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("Interrupted: nothing more was done.", soft_wrap=True)
            raise typer.Exit(130) from None
        except OSError as e:
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            err_console.print(f"[bold red]Error:[/] {where}{e.strerror or e}", soft_wrap=True)
            raise typer.Exit(1) from None
        except Exception as e:
            if not type(e).__module__.startswith("psycopg"):
                raise
            # the shared server went away or refused a statement: say so in one line, nothing half-done
            # (every change is one transaction, rolled back by the server)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            err_console.print(f"[bold red]Error:[/] PostgreSQL: {first}", soft_wrap=True)
            raise typer.Exit(1) from None


def _app(help: str) -> typer.Typer:
    return typer.Typer(cls=_Group, help=help, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False, rich_markup_mode=None)


app = _app("Offline-first toolkit for mapathons and field mapping on OpenStreetMap.")
volunteer_app = _app("Manage the project's volunteers (mappers, validators, organizers).")
export_app = _app("Export project data to files for QGIS, JOSM, GPS units and spreadsheets.")
app.add_typer(volunteer_app, name="volunteer")
app.add_typer(export_app, name="export")

# the shared options: one meaning per name, from the table in cli_options.py
ProjectOpt = option("project", envvar="MAPATHON_PROJECT")
AsOpt = option("as", ...)
CommentOpt = option("comment")
JsonOpt = option("json", False)
NewOpt = option("new", False)
VillageOpt = option("village", note="Only this village.")
TasksOpt = option("tasks", note="Only these tasks.")


def _usage(message: str) -> MapathonError:
    """A wrong use of the command: one line, exit code 2 (click's usage error code)."""
    return UsageMistake(message)


def _version(value: bool):
    if value:
        console.print(f"mapathon {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    project: Optional[Path] = ProjectOpt,
    db: Optional[str] = typer.Option(
        None, "--db", envvar="MAPATHON_DB",
        help="Keep the project's state in PostgreSQL (postgresql://host/database[?schema=NAME]) instead of the "
             "folder's mapathon.sqlite; needed with 'init', afterwards the folder remembers it."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
):
    ctx.obj = {"project": project, "db": db}
    if db:
        import os

        from .project import DB_ENV, db_option

        db_option(db)  # a clear error for a mistyped URL
        # every part that opens the project (server threads too) sees the same backend, for this command only
        before = os.environ.get(DB_ENV)
        os.environ[DB_ENV] = db
        ctx.call_on_close(lambda: os.environ.__setitem__(DB_ENV, before) if before is not None
                          else os.environ.pop(DB_ENV, None))


def _open(ctx: typer.Context):
    from .project import open_project

    return open_project(ctx.find_root().obj["project"], ctx.find_root().obj["db"])


def _when(stamp: str | None) -> str:
    """An event time in this computer's time zone, e.g. '2026-11-25 19:40 CET'."""
    from .events import parse_iso

    return parse_iso(stamp).astimezone().strftime("%Y-%m-%d %H:%M %Z") if stamp else "-"


def _print_json(obj) -> None:
    """What --json prints: indented UTF-8 JSON on stdout."""
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def _task_line(t) -> str:
    where = f" — {', '.join(t.villages)}" if t.villages else ""
    return f"task {t.id} ({t.key}){where}"


# -- project -----------------------------------------------------------------------------------------


@app.command()
def init(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Folder to create (it may exist, empty or not)."),
    name: str = typer.Option(..., "--name", help="Project name, e.g. 'Dianguirdé 2026'."),
    aoi: Path = typer.Option(..., "--aoi", help="Area of interest: GeoJSON, GeoPackage, Shapefile, "
                             ".osm/.osm.pbf (with --relation) or a villages CSV name,lat,lon (with --radius)."),
    relation: Optional[int] = typer.Option(None, "--relation", help="Boundary relation id, for an OSM file."),
    radius: Optional[float] = typer.Option(None, "--radius", help="Metres to map around each village point."),
    max_area: float = typer.Option(5000.0, "--max-area", help="Refuse an area larger than this (km²)."),
    force: bool = option("force", False, note="Here: keep a village more than 500 km from the others "
                                                    "(refused by default: swapped lat/lon?)."),
    organizer: Optional[str] = option("organizer", note="Here: register this person as the first organizer."),
    lang: str = option("lang", "en", note="Of what volunteers and the commune see."),
    as_json: bool = JsonOpt,
):
    """Create a project folder from an area of interest."""
    from .aoi import read_aoi
    from .i18n import check_lang
    from .project import init_project
    from .tasks import volunteers

    if organizer is not None:  # checked before anything is created
        try:
            organizer = volunteers.check_name(organizer)
        except MapathonError:
            raise _usage(f"--organizer {organizer!r}: give a name of 1 to 80 printable characters") from None
    lang = check_lang(lang)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    # read_aoi calls back only for a large file: the bar then shows on stderr while its features are read
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err_console, transient=True, disable=as_json) as bar:
        job = bar.add_task(f"Reading {aoi.name}", total=None, visible=False)
        area = read_aoi(aoi, relation=relation, radius=radius, max_area_km2=max_area, force=force,
                        progress=lambda done, total: bar.update(job, completed=done, total=total, visible=True))
    for w in area.warnings:
        err_console.print(f"[yellow]Warning:[/] {w}", soft_wrap=True)
    with init_project(directory, name, area, actor=organizer or "organizer", db=ctx.obj["db"], lang=lang) as project:
        if organizer:
            volunteers.add(project, organizer, organizer=True, validator=True, actor=organizer)
        if as_json:
            return _print_json({"name": project.name, "folder": str(directory), "db_url": project.db_url,
                                "lang": lang, "area_km2": area.area_km2, "villages": [v.name for v in area.villages],
                                "warnings": list(area.warnings)})
        console.print(f"Created project [bold]{project.name}[/] in {directory}")
        if project.db_url:
            console.print(f"State in PostgreSQL: {project.db_url}")
        console.print(f"Area of interest: {area.area_km2:,.1f} km², {len(area.villages)} named area(s)"
                      + (": " + ", ".join(v.name for v in area.villages[:20]) if area.villages else ""))
        console.print(f"Next: mapathon --project {shlex.quote(str(directory))} grid --zoom 16")


@app.command()
def info(ctx: typer.Context, as_json: bool = JsonOpt):
    """Show the project: name, area, villages, grid."""
    from .tasks.progress import summary

    with _open(ctx) as p:
        out = summary(p)
    if as_json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return
    console.print(f"[bold]{out['name']}[/]  ({out['folder']})")
    console.print(f"Area of interest: {out['aoi_km2']:,} km², bounds {out['aoi_bounds']}")
    console.print(f"Villages ({len(out['villages'])}): {', '.join(out['villages']) or '-'}")
    g = out["grid"]
    if not g:
        grid_text = "no grid yet (mapathon grid --zoom 16)"
    elif g.get("kind") == "tiles":
        grid_text = f"tiles at zoom {g['zoom']}" + (", clipped" if g.get("clip") else "")
    elif g.get("kind") == "metric":
        grid_text = f"{g['size_m']:g} m squares, UTM zone {g['utm_zone']}" + (", clipped" if g.get("clip") else "")
    else:
        grid_text = f"from {g.get('file')}"
    console.print(f"Tasks: {out['tasks']} — {grid_text}")


@app.command("lang")
def lang_cmd(ctx: typer.Context, lang: Optional[str] = typer.Argument(None, help="en or fr; leave out to show it."),
             as_json: bool = JsonOpt):
    """Show or set the project's language: the room server's pages, the projector picture, the HTML report."""
    from .i18n import set_project_lang

    with _open(ctx) as p:
        now = set_project_lang(p, lang) if lang else p.lang
    if as_json:
        return _print_json({"lang": now})
    console.print(f"The project's language: {now}")


@app.command()
def grid(
    ctx: typer.Context,
    zoom: Optional[int] = option("zoom", note="Here: one zoom, for the tasks' squares (TM uses 16-18)."),
    size: Optional[float] = typer.Option(None, "--size", help="Metric squares of this many metres (local UTM zone)."),
    from_file: Optional[Path] = typer.Option(None, "--from", help="Tasks from a Tasking Manager grid or polygon file."),
    min_overlap: float = typer.Option(1.0, "--min-overlap", help="Keep cells overlapping the area by more than this (m²)."),
    clip: bool = typer.Option(False, "--clip", help="Clip border cells to the area of interest."),
    max_tasks: int = typer.Option(300_000, "--max-tasks", help="Refuse a grid with more tasks (guards a mistyped zoom)."),
    force: bool = option("force", False, note="Here: replace a grid that already has recorded work."),
    actor: Optional[str] = option("as", None, note="Who makes the grid (default: the project's organizer, "
                                                  "if it has exactly one)."),
    as_json: bool = JsonOpt,
):
    """Cover the area of interest with imagery tasks."""
    from .selection import organizer_by_default
    from .tasks import gridding

    chosen = [o for o in (zoom, size, from_file) if o is not None]
    if len(chosen) != 1:
        raise _usage("give exactly one of --zoom Z, --size METRES or --from FILE")
    with _open(ctx) as p:
        n, desc = gridding.make_grid(p, zoom=zoom, size=size, from_file=from_file, min_overlap=min_overlap,
                                     clip=clip, max_tasks=max_tasks, force=force,
                                     actor=organizer_by_default(p, actor))
    if as_json:
        return _print_json({"tasks": n, "description": desc})
    console.print(f"Grid of {n:,} tasks ({desc})")


@app.command()
def split(ctx: typer.Context, task: str = typer.Argument(..., help="Task number or z/x/y."),
          actor: str = AsOpt, comment: Optional[str] = CommentOpt, as_json: bool = JsonOpt):
    """Replace a task by four smaller ones (tile children, or quadrants)."""
    from .tasks import lifecycle

    with _open(ctx) as p:
        kids = lifecycle.split(p, task, actor, comment=comment)
    if as_json:
        return _print_json([k.as_dict() for k in kids])
    console.print(f"Task {task} split into: " + ", ".join(f"{k.id} ({k.key})" for k in kids))


# -- lifecycle ------------------------------------------------------------------------------------------


@app.command()
def claim(
    ctx: typer.Context,
    task: Optional[str] = typer.Argument(None, help="Task number or z/x/y (or use --next)."),
    actor: str = AsOpt,
    next_: bool = typer.Option(False, "--next", help="Give me a task: invalidated first, then ready, away from locked ones."),
    village: Optional[str] = option("village", note="With --next: a task in this village."),
    hours: float = typer.Option(2.0, "--hours", help="How long the lock lasts."),
    comment: Optional[str] = CommentOpt,
    new: bool = NewOpt,
    as_json: bool = JsonOpt,
):
    """Lock a task for mapping (or, for a validator, a mapped task for validation)."""
    from .tasks import lifecycle

    if next_ and task is not None:
        raise _usage("give a TASK or --next, not both")
    if not next_ and task is None:
        raise _usage("which task? give its number (or z/x/y), or --next to be given one")
    if village and not next_:
        raise _usage("--village goes with --next")
    with _open(ctx) as p:
        if next_:
            t = lifecycle.claim_next(p, actor, village=village, hours=hours, new=new)
        else:
            t = lifecycle.claim(p, task, actor, hours=hours, comment=comment, new=new)
    if as_json:
        return _print_json(t.as_dict())
    what = "mapping" if t.state == lifecycle.LOCKED_FOR_MAPPING else "validation"
    console.print(f"{t.locked_by} holds {_task_line(t)} for {what} until {_when(t.lock_expires)}")


def _simple(fn_name: str, verb: str):
    def command(ctx: typer.Context, task: str = typer.Argument(..., help="Task number or z/x/y."),
                actor: str = AsOpt, comment: Optional[str] = CommentOpt, as_json: bool = JsonOpt):
        from .tasks import lifecycle

        with _open(ctx) as p:
            t = getattr(lifecycle, fn_name)(p, task, actor, comment=comment)
        if as_json:
            return _print_json(t.as_dict())
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
    as_json: bool = JsonOpt,
):
    """Validate a mapped task (validators; nobody validates their own work)."""
    from .tasks import lifecycle

    if accept is None:
        raise _usage("say --accept or --reject")
    with _open(ctx) as p:
        t = lifecycle.validate(p, task, actor, accept=accept, comment=comment)
    if as_json:
        return _print_json(t.as_dict())
    console.print(f"{_task_line(t)}: now {t.state}")


@app.command()
def history(ctx: typer.Context, task: str = typer.Argument(..., help="Task number or z/x/y."), as_json: bool = JsonOpt):
    """Show everything that happened to a task (and to the task it was split from)."""
    from .tasks import lifecycle

    with _open(ctx) as p:
        t, evs = lifecycle.history(p, task)
    if as_json:
        print(json.dumps({**t.as_dict(), "events": [e.as_dict() for e in evs]}, ensure_ascii=False, indent=2))
        return
    console.print(f"[bold]{_task_line(t)}[/]: {t.state}" + (f", locked by {t.locked_by} until {_when(t.lock_expires)}"
                                                            if t.locked_by else ""))
    table = Table("when", "who", "what", "from", "to", "comment")
    for e in evs:
        table.add_row(_when(e.ts), e.actor, e.action + ("" if e.task == t.key else f" [{e.task}]"),
                      e.from_state or "", e.to_state or "", e.comment or "")
    console.print(table)


@app.command("tasks")
def tasks_cmd(
    ctx: typer.Context,
    state: Optional[str] = typer.Option(None, "--state", help="Only tasks in this state."),
    village: Optional[str] = option("village", note="Only tasks in this village."),
    as_json: bool = JsonOpt,
):
    """List tasks with their state, village and volunteers."""
    from .tasks import lifecycle

    if state and state.upper() not in lifecycle.STATES:
        raise _usage(f"--state {state}: unknown (states: {', '.join(lifecycle.STATES)})")
    with _open(ctx) as p:
        ts = lifecycle.list_tasks(p, state.upper() if state else None, village)
    rows = [t.as_dict() for t in ts]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("id", "address", "state", "village", "locked by", "mapped by", "validated by")
    for r in rows:
        table.add_row(str(r["id"]), r["key"], r["state"], ", ".join(r["villages"]), r["locked_by"] or "",
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
    organizer: bool = option("organizer", False, note="Here: may release, reset and split any task."),
    actor: Optional[str] = option("as", None, note="The organizer giving a role (needed once the project has one)."),
    as_json: bool = JsonOpt,
):
    """Register a volunteer, or give roles to one already registered."""
    from .tasks import volunteers

    with _open(ctx) as p:
        v, created = volunteers.add(p, name, osm_user=osm_user, validator=validator, organizer=organizer, actor=actor)
    if as_json:
        return _print_json({**v.as_dict(), "created": created})
    console.print(f"{'Added' if created else 'Updated'} {v.name} ({v.roles})")


@volunteer_app.command("list")
def volunteer_list(ctx: typer.Context, as_json: bool = JsonOpt):
    """List the project's volunteers and their roles."""
    from .tasks import volunteers

    with _open(ctx) as p:
        vs = volunteers.list_all(p)
    if as_json:
        _print_json([v.as_dict() for v in vs])
        return
    table = Table("name", "OSM user", "roles")
    for v in vs:
        table.add_row(v.name, v.osm_user or "", v.roles)
    console.print(table)


@volunteer_app.command("rename")
def volunteer_rename(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The volunteer's name now."),
    new_name: str = typer.Argument(..., help="Their new name."),
    actor: Optional[str] = option("as", None, note="The organizer doing it (needed once the project has one)."),
    as_json: bool = JsonOpt,
):
    """Correct a volunteer's name; the old name still means them."""
    from .tasks import volunteers

    with _open(ctx) as p:
        before, v = volunteers.rename(p, name, new_name, actor=actor)
    if as_json:
        return _print_json({**v.as_dict(), "former_name": before})
    console.print(f"Renamed {before} to {v.name}")


@volunteer_app.command("merge")
def volunteer_merge(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The volunteer to keep."),
    other: str = typer.Argument(..., help="A second entry for the same person: their work becomes NAME's."),
    actor: Optional[str] = option("as", None, note="The organizer doing it (needed once the project has one)."),
    as_json: bool = JsonOpt,
):
    """Make two volunteers one: OTHER's tasks, files, credit and roles become NAME's."""
    from .tasks import volunteers

    with _open(ctx) as p:
        v, merged = volunteers.merge(p, name, other, actor=actor)
    if as_json:
        return _print_json({**v.as_dict(), "merged": merged})
    console.print(f"Merged {merged} into {v.name} ({v.roles})")


@volunteer_app.command("remove")
def volunteer_remove(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A volunteer who has done nothing yet (a mistake)."),
    actor: Optional[str] = option("as", None, note="The organizer doing it (needed once the project has one)."),
    as_json: bool = JsonOpt,
):
    """Remove a volunteer registered by mistake (only one without any history)."""
    from .tasks import volunteers

    with _open(ctx) as p:
        v = volunteers.remove(p, name, actor=actor)
    if as_json:
        return _print_json({**v.as_dict(), "removed": True})
    console.print(f"Removed {v.name}")


@volunteer_app.command("purge")
def volunteer_purge(
    ctx: typer.Context,
    older_than: Optional[float] = typer.Option(None, "--older-than", metavar="DAYS",
                                               help="Only those registered and last signed in more than DAYS days ago."),
    actor: str = AsOpt,
    as_json: bool = JsonOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Say who would be removed; remove nobody."),
):
    """Remove the volunteers who only signed in (no role, nothing claimed, mapped, validated or handed in)."""
    from .tasks import volunteers

    with _open(ctx) as p:
        gone = volunteers.purge(p, older_than=older_than, actor=actor, dry_run=dry_run)
    if as_json:
        print(json.dumps({"dry_run": dry_run, "removed": [v.name for v in gone]}, ensure_ascii=False, indent=2))
        return
    verb = "Would remove" if dry_run else "Removed"
    console.print(f"{verb} {len(gone)} unused volunteer(s)" + (": " + ", ".join(v.name for v in gone) if gone else ""),
                  soft_wrap=True)


# -- progress and exports ---------------------------------------------------------------------------------


@app.command()
def status(
    ctx: typer.Context,
    as_json: bool = JsonOpt,
    map_png: Optional[Path] = typer.Option(None, "--map", help="Also draw the grid coloured by state into this PNG."),
    village: Optional[str] = option("village", note="With --map: the picture shows this village."),
    lang: Optional[str] = option("lang", note="With --map: its words (default: the project's)."),
):
    """Progress per village and overall, and each volunteer's work."""
    from .i18n import check_lang
    from .tasks import progress

    lang = check_lang(lang)
    if village is not None and not map_png:
        raise _usage(f"--village {village}: goes with --map FILE.png (the picture of one village)")
    with _open(ctx) as p:
        if village is not None:
            p.village(village)  # a clear error before anything is done
        st = progress.status(p)
        if map_png:
            from .render.progress_map import render_progress_map

            render_progress_map(p, st, map_png, lang=lang, village=village)
    if as_json:
        print(json.dumps(st.as_dict(), ensure_ascii=False, indent=2))
        return
    # Narrow enough for an 80-column terminal; --json has every state apart.
    cols = [("ready", ("READY",)), ("locked", ("LOCKED_FOR_MAPPING", "LOCKED_FOR_VALIDATION")),
            ("mapped", ("MAPPED",)), ("valid", ("VALIDATED",)), ("redo", ("INVALIDATED",)), ("bad", ("BADIMAGERY",))]
    marks = ("marks",) if st.overall.marks else ()  # marks brought back on paper (mapathon scan)
    table = compact_table("village", "tasks", *(c for c, _ in cols), "mapped%", "valid%", *marks, title=st.project,
                          min_first=min(14, max(len(c.name) for c in st.villages + [st.overall])))
    for c in st.villages + [st.overall]:
        style = "bold" if c is st.overall else None
        table.add_row("All" if c is st.overall else c.name, str(c.total),
                      *(str(sum(c.states[s] for s in group)) for _, group in cols),
                      f"{c.mapped_pct:.1f}", f"{c.validated_pct:.1f}", *((str(c.marks),) if marks else ()),
                      style=style)
    console.print(table)
    console.print("locked = being mapped or validated; redo = invalidated; bad = bad imagery (not counted in %)")
    if st.shared:
        console.print(f"{st.shared} task(s) lie in two villages or more and count in each village's row, "
                      "so the village rows add up to more than All.", soft_wrap=True)
    if st.volunteers:
        vt = compact_table("volunteer", "roles", "mapped", "validated", "rejected", "time", "holds")
        for v in st.volunteers:
            h, m = divmod(round(v.locked_hours * 60), 60)
            vt.add_row(v.name, v.roles, str(v.mapped), str(v.validated), str(v.invalidated), f"{h}:{m:02d}",
                       v.holding.split(" ")[0] if v.holding else "")
        console.print(vt)
    if st.expired:
        console.print(f"Released {len(st.expired)} expired lock(s): {', '.join(st.expired)}")
    if st.conflicts:  # sync between sites (docs/sync.md)
        console.print(f"[yellow]Sync conflicts ({len(st.conflicts)})[/]: changes made at another site that lost when "
                      "the sites' logs were merged; the volunteers' files are kept. Check these tasks:", soft_wrap=True)
        for c in st.conflicts[:20]:
            num = f"task {c['task_id']} " if c.get("task_id") else "task "
            console.print(f"  {num}({c['task']}): {c['actor']}'s {c['action']} of {_when(c['ts'])}, site "
                          f"{c['site'][:8]}: {c['reason']}", soft_wrap=True)
        if len(st.conflicts) > 20:
            console.print(f"  ... and {len(st.conflicts) - 20} more (see --json)")
    if map_png:
        console.print(f"Progress map written to {map_png}")


CsvDialectOpt = option("csv_dialect")


@export_app.command("tasks")
def export_tasks_cmd(
    ctx: typer.Context,
    output: Path = option("output", ...),
    fmt: Optional[str] = option("format", note="geojson, gpkg, shp, gpx, osm or csv (default: from the extension)."),
    include_split: bool = typer.Option(False, "--include-split", help="Also write split (replaced) tasks."),
    csv_dialect: Optional[str] = CsvDialectOpt,
    as_json: bool = JsonOpt,
):
    """Export the task grid with each task's state, village and volunteers."""
    from .exports.tasks import export_tasks

    with _open(ctx) as p:
        n = export_tasks(p, output, fmt, include_split=include_split, csv_dialect=csv_dialect)
    if as_json:
        return _print_json({"output": str(output), "tasks": n})
    console.print(f"Wrote {n} tasks to {output}")


@export_app.command("data")
def export_data_cmd(
    ctx: typer.Context,
    output: Path = option("output", ...),
    fmt: Optional[str] = option("format", note="geojson, gpkg, gpx, kml or csv (default: from the extension)."),
    kind: str = typer.Option("wells", "--kind", help="wells (every water point), buildings or all."),
    village: Optional[str] = VillageOpt,
    data: Optional[Path] = option("data"),
    csv_dialect: Optional[str] = CsvDialectOpt,
    as_json: bool = JsonOpt,
):
    """Export water points and buildings for a phone (OsmAnd, Organic Maps), a GPS unit or a spreadsheet."""
    from .exports.data import export_data

    with _open(ctx) as p:
        r = export_data(p, output, fmt, data=data, kind=kind, village=village, csv_dialect=csv_dialect)
    if as_json:
        return _print_json({"output": str(output), "source": str(r.source), "total": r.total, "counts": r.counts,
                            "outside": r.outside})
    what = ", ".join(f"{n} {k}" for k, n in r.counts.items())
    console.print(f"Wrote {r.total} objects ({what}) from {r.source} to {output}", soft_wrap=True)
    if r.outside:
        console.print(f"Outside the project's area (no village): {r.outside}; --village leaves them out", soft_wrap=True)


# -- contributions and merging -----------------------------------------------------------------------


@app.command("submit")
def submit_cmd(
    ctx: typer.Context,
    files: list[Path] = typer.Argument(..., help="JOSM .osm, .osc or .osm.pbf files (optionally .gz/.bz2)."),
    actor: str = option("as", ..., note="Here: the volunteer who mapped them."),
    task: Optional[str] = typer.Option(None, "--task", help="The task they were mapped for (number or z/x/y)."),
    as_json: bool = JsonOpt,
    new: bool = NewOpt,
):
    """Collect volunteers' OSM files into the project (checked, copied and recorded)."""
    from .osm.submit import submit
    from .tasks import volunteers

    with _open(ctx) as p:
        newcomer = volunteers.find(p, actor) is None
        subs = submit(p, files, actor, task, new=new)
        if newcomer:  # a short name would split someone's credit: say so
            err_console.print(f"[yellow]Note:[/] {actor} was not registered and is now a new volunteer"
                              " (see 'mapathon volunteer list')", soft_wrap=True)
    if as_json:
        print(json.dumps([c.as_dict() for c in subs], ensure_ascii=False, indent=2))
        return
    for c in subs:
        what = ", ".join(f"{c.counts.get(k, 0)} {k}" for k in ("create", "modify", "delete") if c.counts.get(k))
        if c.already:
            console.print(f"{c.original_name}: already submitted as contribution {c.id} by {c.volunteer} "
                          f"on {_when(c.submitted)}; not recorded again")
        else:
            console.print(f"Contribution {c.id}: {c.original_name} from {c.volunteer}"
                          + (f" for task {c.task_id} ({c.task})" if c.task else "")
                          + f", {c.objects:,} objects ({what or 'no changes'}), {c.size:,} bytes")


@app.command("merge")
def merge_cmd(
    ctx: typer.Context,
    files: Optional[list[Path]] = typer.Argument(None, help="Files to merge (default: the project's contributions)."),
    base: Optional[Path] = option("base", note="Here: the extract to merge onto (sorted .osm.pbf)."),
    output: Path = option("output", ..., note="The merged snapshot (.osm.pbf)."),
    upload: Optional[Path] = typer.Option(None, "--upload", help="Also write only the changes as osmChange (.osc)."),
    josm: Optional[Path] = typer.Option(None, "--josm", help="Also write the changes as JOSM XML (.osm) to upload."),
    per_volunteer: Optional[Path] = typer.Option(None, "--upload-per-volunteer", help="Also write one osmChange "
                                                 "per volunteer into this folder, with a guide each, for them to "
                                                 "upload with their own account."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave out unreadable files and merge the rest."),
    report: Optional[Path] = option("html"),
    findings: Optional[Path] = option("geojson", note="the quality findings."),
    report_old: Optional[Path] = hidden_alias(None, "--report"),
    findings_old: Optional[Path] = hidden_alias(None, "--findings"),
    check: str = option("check", "changes"),
    lang: Optional[str] = option("lang", note="Of the report and of the upload guides (default: the project's)."),
    as_json: bool = JsonOpt,
):
    """Merge volunteers' files (renumbering new objects, settling conflicts) into one snapshot; check it; credit the work."""
    from .i18n import check_lang
    from .osm.merge import merge
    from .osm.submit import merge_inputs, publish_merge, with_provenance
    from .project import is_project

    report, findings = report or report_old, findings or findings_old  # the old spellings --report, --findings
    lang = check_lang(lang)
    from .quality.commands import check_mode

    check = check_mode(check)  # refused before anything is merged
    in_project = is_project(ctx.find_root().obj["project"])
    if files:
        if in_project:
            with _open(ctx) as p:
                specs = with_provenance(p, files)
        else:
            specs = with_provenance(None, files)
    else:
        with _open(ctx) as p:
            specs = merge_inputs(p)
        if not specs:
            raise MapathonError("the project has no contributions yet: 'mapathon submit FILE --as NAME' first, "
                                "or give the files to merge")
    guide = None
    if per_volunteer is not None:
        from .osm.upload import guide_info

        if in_project:
            with _open(ctx) as p:
                guide = guide_info(p, lang)
        else:
            guide = guide_info(None, lang)
    result = merge(specs, output, base=base, upload=upload, josm=josm, skip_bad=skip_bad, upload_dir=per_volunteer,
                   guide=guide)
    if in_project:
        with _open(ctx) as p:
            latest = publish_merge(p, result)
        if not as_json:
            console.print(f"The project's latest data is now {latest} (used by 'mapathon print')")
    from .quality.commands import after_merge, print_after_merge  # quality checks and credit of the merge

    checked = after_merge(ctx.find_root().obj["project"], result, output, html=report, geojson=findings, lang=lang,
                          check=check)
    if as_json:
        print(json.dumps({**result.summary(), **checked.as_dict()}, ensure_ascii=False, indent=2))
        return
    _print_merge(result)
    print_after_merge(checked, console)


def _print_merge(result) -> None:
    st = result.stats
    table = compact_table("file", "volunteer", "task", "objects", "new", "mod.", "del.", "renumbered",
                          title=f"{st['inputs']} file(s) merged" + (f" onto {result.base.name}" if result.base else ""))
    for i in result.inputs[:40]:
        table.add_row(i.display or i.name, i.volunteer or "", i.task or "", f"{i.objects:,}", f"{i.counts.get('create', 0):,}",
                      f"{i.counts.get('modify', 0):,}", f"{i.counts.get('delete', 0):,}", f"{i.renumbered:,}")
    if len(result.inputs) > 40:
        table.add_row(f"... and {len(result.inputs) - 40} more", "", "", "", "", "", "", "")
    console.print(table)
    by = st["by_type"]
    console.print(f"Objects read: {st['objects_in']:,}; in the outputs: {st['new']:,} new, {st['modified']:,} modified, "
                  f"{st['deleted']:,} deleted (" + "; ".join(
                      f"{t}s {c['create']:,}/{c['modify']:,}/{c['delete']:,}" for t, c in by.items()) + ")")
    console.print(f"Renumbered new objects: {st['renumbered']:,}; identical edits merged: "
                  f"{st['identical_edits_merged']:,}; compatible edits combined: {st['edits_combined']:,}; "
                  f"duplicates collapsed: {st['duplicates_collapsed']:,}; "
                  f"deletions refused: {st['deletions_refused']:,}; conflicts: {st['conflicts']:,}")
    from rich.markup import escape  # conflicts quote volunteers' tag values, which may hold [brackets]

    for c in result.conflicts[:25]:
        console.print(f"  [yellow]conflict ({c.kind})[/]: {escape(c.message)}", soft_wrap=True)
    if len(result.conflicts) > 25:
        console.print(f"  ... and {len(result.conflicts) - 25} more conflicts (see --json)")
    for s in result.skipped:
        console.print(f"[yellow]Skipped[/] {s['file']}: {s['reason']}", soft_wrap=True)
    out = result.outputs
    console.print(f"Wrote {out['snapshot']}" + (f", {out['upload']}" if out.get("upload") else "")
                  + (f", {out['josm']}" if out.get("josm") else "") + f" in {st['seconds']:.1f} s")
    if out.get("per_volunteer"):
        pv = out["per_volunteer"]
        console.print(f"Wrote {len(pv['files'])} upload file(s) into {pv['folder']}, one per volunteer, each with "
                      f"its guide: " + ", ".join(f["file"] + (f" (after {', '.join(map(str, f['after']))})"
                                                              if f["after"] else "") for f in pv["files"][:12])
                      + (" ..." if len(pv["files"]) > 12 else "") + f"; see {pv['folder']}/README.md", soft_wrap=True)


# -- quality checks and credit -------------------------------------------------------------------------




photos_app = _app("Geotagged photos: place them on the map, export them for JOSM.")
app.add_typer(photos_app, name="photos")


@photos_app.command("add")
def photos_add_cmd(
    ctx: typer.Context,
    files: list[Path] = typer.Argument(..., help="Photos (JPEG with EXIF GPS position)."),
    data: Optional[Path] = option("data", note="Here: the features the photos are attached to."),
    max_distance: float = typer.Option(50, "--max-distance", help="Attach a photo to a feature or survey point at most this far (metres)."),
    gpx: Optional[Path] = typer.Option(None, "--gpx", help="Also write all the project's photos as GPX waypoints for JOSM."),
    geojson: Optional[Path] = option("geojson", note="all the project's photos, with their image paths."),
    as_json: bool = JsonOpt,
):
    """Keep geotagged photos in the project, attached to the nearest feature; refuse those without a position."""
    from .survey.photos import add_photos, list_photos, write_geojson, write_gpx

    with _open(ctx) as p:
        kept, refused = add_photos(p, files, data=data, max_distance=max_distance)
        every = list_photos(p)
        if gpx is not None:
            write_gpx(p, every, gpx)
        if geojson is not None:
            write_geojson(p, every, geojson)
    if as_json:
        print(json.dumps({"photos": [k.as_dict() for k in kept], "refused": refused}, ensure_ascii=False, indent=2))
    else:
        for k in kept:
            where = f"{k.feature} ({k.distance_m:g} m)" if k.feature else "no feature near"
            console.print(f"{k.file}: {k.lat:.6f}, {k.lon:.6f}, {where}" + (" (already kept)" if k.already else ""))
        for line in refused:
            err_console.print(f"[yellow]Refused:[/] {line}", soft_wrap=True)
    if refused and not kept:
        raise typer.Exit(1)


@app.command("check")
def check_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="OSM data to check: .osm (JOSM), .osc or .osm.pbf (e.g. the merged snapshot)."),
    geojson: Optional[Path] = option("geojson", note="the quality findings."),
    limit: int = typer.Option(25, "--limit", help="Findings listed on screen (all are in --json and --geojson)."),
    bbox: Optional[str] = option("bbox", note="Only what lies in it."),
    tasks: Optional[str] = option("tasks", note="Only what lies in them."),
    village: Optional[str] = option("village", note="Only what lies in its area."),
    as_json: bool = JsonOpt,
):
    """Find duplicate, overlapping, unclosed, self-intersecting, tiny and not-square buildings, untagged ways, crossings."""
    from .quality.commands import print_check, run_check

    result = run_check(ctx.find_root().obj["project"], file, geojson, bbox=bbox, tasks=tasks, village=village)
    if as_json:
        print(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
        return
    print_check(result, console, limit)


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    what: Optional[str] = typer.Argument(None, metavar="[water]", help="'water': the water-point report per village "
                                         "(--html, --csv, --gpkg) instead of the credit report."),
    base: Optional[Path] = option("base", note="Here: for what changed."),
    merged: Optional[Path] = typer.Option(None, "--merged", help="The merged snapshot: also check it and credit the findings."),
    html: Optional[Path] = option("html"),
    geojson: Optional[Path] = option("geojson", note="the quality findings (with --merged)."),
    check: str = option("check", "changes", note="With --merged."),
    lang: Optional[str] = option("lang", note="With --html: its words (default: the project's)."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="report water: the table per village as CSV."),
    gpkg: Optional[Path] = typer.Option(None, "--gpkg", help="report water: water points, far houses and villages as GeoPackage."),
    data: Optional[Path] = option("data", note="For report water."),
    distance: float = typer.Option(500, "--distance", help="report water: houses further than this (metres) from a working point."),
    as_json: bool = JsonOpt,
):
    """Credit and progress: buildings, km of roads and tracks, water points and POIs per volunteer, task and village."""
    from .i18n import check_lang

    if what is not None:
        if what != "water":
            raise MapathonError(f"report {what}: unknown report; the one report by name is 'water'")
        from .survey.water import run

        with _open(ctx) as p:
            rep = run(p, data=data, distance=distance, html_path=html, csv_path=csv_out, gpkg_path=gpkg,
                      lang=check_lang(lang))
        if as_json:
            print(json.dumps(rep.as_dict(), ensure_ascii=False, indent=2))
            return
        table = Table("village", "water points", "working", "not working", "unknown", "houses", f"> {distance:g} m")
        for v in rep.villages:
            s = v.summary()
            table.add_row(v.name, *(str(s[k]) for k in ("water_points", "working", "not_working", "unknown", "houses",
                                                        "houses_far")))
        console.print(table)
        for f in (html, csv_out, gpkg):
            if f is not None:
                console.print(f"Wrote {f}")
        return
    from .quality.commands import print_after_merge, run_report

    rep = run_report(ctx.find_root().obj["project"], base=base, merged=merged, html=html, geojson=geojson,
                     lang=check_lang(lang), check=check)
    if as_json:
        print(json.dumps(rep.as_dict(), ensure_ascii=False, indent=2))
        return
    print_after_merge(rep, console)


# -- printing: field atlases ----------------------------------------------------------------------------


@app.command("print")
def print_cmd(
    ctx: typer.Context,
    output: Path = option("output", ..., note="The atlas (.pdf); with --format png, page pictures NAME-01.png..."),
    data: Optional[Path] = option("data"),
    village: Optional[list[str]] = option("village", note="A village to print (repeat it for several); default: all the project's villages."),
    tasks: Optional[str] = option("tasks", note="Print the area of these tasks."),
    bbox: Optional[str] = option("bbox", note="Print this box."),
    paper: str = typer.Option("A4", "--paper", help="A4, A3 or letter."),
    orientation: str = typer.Option("portrait", "--orientation", help="portrait or landscape."),
    scale: str = typer.Option("1:5000", "--scale", help="Map scale, e.g. 1:5000."),
    lang: Optional[str] = option("lang", note="Of every word on the sheets (default: the project's; without a project, en)."),
    grayscale: bool = typer.Option(False, "--grayscale", help="Only shades of grey (for black-and-white printers)."),
    notes: Optional[str] = typer.Option(None, "--notes", help="Room for field notes: half (of each map page) or page (a page after each map)."),
    tasks_overlay: bool = typer.Option(False, "--tasks-overlay", help="Draw the task squares with their numbers and states."),
    imagery: Optional[Path] = typer.Option(None, "--imagery", help="Cached satellite imagery (.mbtiles) under the map."),
    fmt: str = option("format", "pdf", note="pdf, or png (one picture per page, for phones)."),
    max_pages: int = typer.Option(60, "--max-pages", help="At most this many map pages (villages keep the pages nearest to their point and say what is cut; a box or tasks needing more are refused)."),
    all_tasks: bool = typer.Option(False, "--all-tasks", help="A village's pages cover all its tasks, even where nothing is mapped (default: its tasks that hold data)."),
    include_empty: bool = typer.Option(False, "--include-empty", help="Also print a village's pages where nothing is mapped."),
    as_json: bool = JsonOpt,
):
    """Print a field atlas: cover, map pages at scale, index of places (PDF, offline)."""
    from .atlas import PrintOptions, make_atlas

    villages = [n.strip() for v in (village or []) for n in v.split(",") if n.strip()]
    result = make_atlas(PrintOptions(
        output=output, data=data, villages=villages, tasks=tasks, bbox=bbox, paper=paper, orientation=orientation,
        scale=scale, lang=lang, grayscale=grayscale, notes=notes, tasks_overlay=tasks_overlay, imagery=imagery,
        fmt=fmt, max_pages=max_pages, all_tasks=all_tasks, include_empty=include_empty,
        project_dir=ctx.find_root().obj["project"]))
    if as_json:
        print(json.dumps({"outputs": [str(o) for o in result.outputs], "pages": result.pages,
                          "map_pages": result.map_pages, "areas": result.areas, "data": str(result.data),
                          "cache": str(result.cache), "cache_built": result.cache_built,
                          "seconds": round(result.seconds, 2), "left_out": result.left_out.as_dict()},
                         ensure_ascii=False, indent=2))
        return
    what = str(result.outputs[0]) if len(result.outputs) == 1 else \
        f"{len(result.outputs)} pictures ({result.outputs[0].name} ... {result.outputs[-1].name})"
    console.print(f"Wrote {what}: {result.pages} pages, {result.map_pages} of them maps "
                  f"({', '.join(result.areas[:6])}{' ...' if len(result.areas) > 6 else ''}) in {result.seconds:.1f} s")
    console.print(f"Data: {result.data} (layer cache {'built' if result.cache_built else 'reused'}: {result.cache})")
    for line in result.left_out.messages():
        console.print(f"[yellow]Left out:[/] {line}", soft_wrap=True)



@app.command("scan")
def scan_cmd(
    ctx: typer.Context,
    files: list[Path] = typer.Argument(..., help="Photos or scans of atlas pages: JPEG, PNG, HEIC, or PDF (each page)."),
    output: Optional[Path] = option("output", note="Here: the folder for the GeoTIFFs, their .json and the marks "
                                    "(default: the project's scans/)."),
    brought_by: Optional[str] = option("as", None, note="Here: who brought the pages back (the field team is credited)."),
    as_json: bool = JsonOpt,
):
    """Place photos of annotated atlas pages (offline): a GeoTIFF per page, added to the 'scans' imagery;
    the ink marks drawn on them become points, lines and areas to review (JOSM layer, GeoJSON, HTML)."""
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from .scan import run

    try:
        project_cm = _open(ctx)
    except MapathonError:
        if output is None:
            raise
        project_cm = contextlib.nullcontext(None)
    with project_cm as p, Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                   console=err_console, transient=True, disable=as_json) as bar:
        job = bar.add_task("Scanning", total=len(files))
        results = run.scan_files(files, output or p.path / "scans", project=p, brought_by=brought_by,
                                 progress=lambda _: bar.advance(job))
    if as_json:
        print(json.dumps([r.as_dict() for r in results], ensure_ascii=False, indent=2))
    for r in results:
        if r.ok and not as_json:
            console.print(f"Placed {r.source}: page {r.page}, off by {r.residual_mm:.2f} mm ({r.residual_m:.1f} m) "
                          f"-> {r.geotiff}" + (f", {r.marks} marks" if r.marks is not None else ""), soft_wrap=True)
        elif not r.ok:
            err_console.print(f"[red]Refused[/] {r.message}", soft_wrap=True)
    failed = sum(not r.ok for r in results)
    if failed:
        raise MapathonError(f"{failed} of {len(results)} picture(s) could not be placed (see above); the others are kept")

# -- imagery and editors -------------------------------------------------------------------------------

imagery_app = _app("Imagery: sources, purchase estimates, an offline tile cache and its server.")
app.add_typer(imagery_app, name="imagery")
ZoomOpt = option("zoom", "16-19", note="Here: 18, 16-19 or 16,18.")
SourceOpt = option("source", note="Default: the project's default.")
TilesUrlOpt = option("tiles_url", "http://127.0.0.1:8001")
HashtagsOpt = option("hashtags")


@imagery_app.command("add")
def imagery_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A short name, e.g. 'maxar-2024' (names the cache file)."),
    spec: str = typer.Argument(..., help="JOSM/Tasking Manager imagery: tms[19]:https://.../{zoom}/{x}/{y}.jpg, "
                                         "tms[12,20]:..., wms:...{bbox}..."),
    title: Optional[str] = option("title"),
    attribution: str = option("attribution", ""),
    licence: str = option("licence", ""),
    terms_url: str = typer.Option("", "--terms-url", help="Where the licence or terms are written."),
    replace: bool = typer.Option(False, "--replace", help="Replace a source of that name."),
    make_default: bool = typer.Option(False, "--default", help="Also make it the project's default."),
    as_json: bool = JsonOpt,
):
    """Add a custom imagery source to the project."""
    from .imagery import sources

    with _open(ctx) as p:
        src = sources.add(p, sources.parse(spec, name, title=title, licence=licence, attribution=attribution,
                                           terms_url=terms_url), replace=replace)
        if make_default:
            sources.set_default(p, src.name)
    if as_json:
        return _print_json({**src.as_dict(), "default": make_default})
    console.print(f"Added imagery source {src.name}: {src.josm_string()}" + (" (default)" if make_default else ""))


@imagery_app.command("list")
def imagery_list(ctx: typer.Context, as_json: bool = JsonOpt):
    """List imagery sources, their licence and what the cache holds."""
    from .imagery import mbtiles, sources

    with _open(ctx) as p:
        srcs, default = sources.all_sources(p), sources.default_name(p)
        cached = {n: mbtiles.Reader(mbtiles.cache_path(p.path, n)).summary()
                  for n in srcs if mbtiles.cache_path(p.path, n).is_file()}
    rows = [{**s.as_dict(), "builtin": s.builtin, "default": s.name == default,
             "cached_tiles": cached.get(s.name, {}).get("tiles", 0), "cached_bytes": cached.get(s.name, {}).get("bytes", 0)}
            for s in srcs.values()]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from .imagery.plan import human_bytes

    table = Table("", "name", "type", "zooms", "cached", "licence / attribution")
    for r in rows:
        table.add_row("*" if r["default"] else "", r["name"], r["type"], f"{r['min_zoom']}-{r['max_zoom']}",
                      f"{r['cached_tiles']:,} tiles, {human_bytes(r['cached_bytes'])}" if r["cached_tiles"] else "-",
                      "; ".join(x for x in (r["licence"], r["attribution"]) if x))
    console.print(table)
    console.print(f"* default: {default}")


@imagery_app.command("default")
def imagery_default(ctx: typer.Context, name: Optional[str] = typer.Argument(None, help="Source to make the default."),
                    as_json: bool = JsonOpt):
    """Show or set the project's default imagery source."""
    from .imagery import sources

    with _open(ctx) as p:
        src = sources.set_default(p, name) if name else sources.get(p)
    if as_json:
        return _print_json(src.as_dict())
    console.print(f"Default imagery source: {src.name} ({src.title})")


@imagery_app.command("plan")
def imagery_plan(
    ctx: typer.Context,
    village: Optional[str] = VillageOpt,
    tasks: Optional[str] = TasksOpt,
    zoom: str = ZoomOpt,
    price: float = typer.Option(8.0, "--price-per-km2", help="Purchase price per km² (8 € from 200 € for 25 km²)."),
    min_order: float = typer.Option(0.0, "--min-order-km2", help="The vendor's minimum order area in km²."),
    currency: str = typer.Option("€", "--currency", help="Currency shown with costs."),
    source: Optional[str] = SourceOpt,
    as_json: bool = JsonOpt,
):
    """Area, tiles per zoom, download size and purchase cost, per village and in total."""
    from .imagery import coverage, plan, sources

    zooms = coverage.parse_zooms(zoom)
    with _open(ctx) as p:
        pl = plan.make_plan(p, zooms, village=village, tasks=tasks, price_per_km2=price, min_order_km2=min_order,
                            source=sources.get(p, source).name)
    if as_json:
        print(json.dumps(pl.as_dict(), ensure_ascii=False, indent=2))
        return
    table = compact_table("area", "km²", *[f"z{z}" for z in zooms], "download", f"cost {currency}",
                          title=f"Imagery plan, zoom{'s' if len(zooms) > 1 else ''} {zoom}, {price:g} {currency}/km²"
                          + (f", minimum order {min_order:g} km²" if min_order else ""))
    for r in pl.rows[:60]:
        table.add_row(r.label, f"{r.area_km2:,.2f}", *[f"{r.tiles[z]:,}" for z in zooms], plan.human_bytes(r.bytes),
                      f"{r.cost:,.0f}")
    if len(pl.rows) > 60:
        table.add_row(f"... and {len(pl.rows) - 60} more", *[""] * (len(zooms) + 3))
    t = pl.total
    table.add_row("[bold]total[/]", f"{t.area_km2:,.2f}", *[f"{t.tiles[z]:,}" for z in zooms],
                  plan.human_bytes(t.bytes), f"[bold]{t.cost:,.0f}[/]")
    console.print(table)
    console.print(f"Download: {t.total_tiles:,} tiles, about {plan.human_bytes(t.bytes)} (at {pl.size_basis}).")
    console.print(f"Purchase estimate: {t.cost:,.0f} {currency} for {max(t.area_km2, min_order):,.2f} km².")
    for n in pl.notes:
        console.print(f"Note: {n}")


@imagery_app.command("fetch")
def imagery_fetch(
    ctx: typer.Context,
    village: Optional[str] = VillageOpt,
    tasks: Optional[str] = TasksOpt,
    zoom: str = ZoomOpt,
    source: Optional[str] = SourceOpt,
    workers: int = typer.Option(8, "--workers", "-w", help="Parallel downloads (be polite: 2-8)."),
    max_size: Optional[str] = typer.Option(None, "--max-size", help="Refuse to grow the cache past this, e.g. 2GB."),
    retries: int = typer.Option(4, "--retries", help="Further attempts for a tile after a transient error."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for a tile."),
    as_json: bool = JsonOpt,
):
    """Download imagery tiles into the project's cache (resumable: run it again to fetch what is missing)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .imagery import coverage, fetch, plan

    zooms = coverage.parse_zooms(zoom)
    opts = fetch.FetchOptions(workers=workers, retries=retries, read_timeout=timeout, max_size=plan.parse_size(max_size))
    with _open(ctx) as p:
        plan.select_areas(p, village, tasks)  # a wrong village or task is said before the progress bar shows
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[size]}"),
                      TimeRemainingColumn(), console=err_console, disable=as_json) as bar:
            job = bar.add_task("tiles", total=None, rate="", size="")
            t0 = [None]

            def progress(done, total, nbytes):
                import time

                t0[0] = t0[0] or time.perf_counter()
                rate = done / max(time.perf_counter() - t0[0], 1e-6)
                bar.update(job, completed=done, total=total, rate=f"{rate:,.0f} tiles/s", size=plan.human_bytes(nbytes))

            res = fetch.fetch_for_project(p, zooms, village=village, tasks=tasks, source=source, options=opts,
                                          progress=progress)
    if as_json:
        print(json.dumps(res.as_dict(), ensure_ascii=False, indent=2))
    else:
        missing = sum(res.missing.values())
        console.print(f"{res.source}: {res.stored:,} tiles stored ({plan.human_bytes(res.bytes)}) in {res.seconds:.1f} s; "
                      f"{res.already:,} already in the cache; {missing:,} empty or blank (recorded, not fetched again)"
                      + (f"; {res.failed_total:,} failed" if res.failed_total else ""))
        for why, n in sorted(res.failed.items(), key=lambda kv: -kv[1])[:5]:
            console.print(f"  {n:,} tile(s): {why}", soft_wrap=True)
        console.print(f"Cache {res.path}: {res.cache_tiles:,} tiles, {plan.human_bytes(res.cache_bytes)}")
    if res.interrupted:
        err_console.print("Interrupted: every tile stored so far is kept; run the same command to resume")
        raise typer.Exit(130)
    if res.aborted:
        raise MapathonError(f"fetch stopped: {res.aborted} (tiles stored so far are kept; run it again to resume)")
    if res.failed_total:
        raise MapathonError(f"{res.failed_total:,} tile(s) could not be fetched; run the same command again to retry them")


@imagery_app.command("import")
def imagery_import(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A z/x/y folder, an .mbtiles file or a GeoTIFF."),
    source: Optional[str] = option("source", note="Here: the cache to import into (default: named after the file)."),
    scheme: str = typer.Option("auto", "--scheme", help="Folder row numbering: xyz, tms, or auto (tms when tilemapresource.xml is there)."),
    zoom: Optional[str] = option("zoom", note="Here: a GeoTIFF's zooms to cut (default: its native zoom and 3 below)."),
    title: Optional[str] = option("title", note="Here: for a new source."),
    attribution: str = option("attribution", "", note="E.g. the vendor and capture date."),
    licence: str = option("licence", ""),
    as_json: bool = JsonOpt,
):
    """Load imagery delivered on a disk (purchased imagery) into the project's cache."""
    from .imagery import coverage, importer, plan

    zooms = coverage.parse_zooms(zoom) if zoom else None
    with _open(ctx) as p:
        res = importer.import_tiles(p, path, source=source, scheme=scheme, zooms=zooms, title=title,
                                    attribution=attribution, licence=licence)
    if as_json:
        print(json.dumps(res.as_dict(), ensure_ascii=False, indent=2))
        return
    console.print(f"Imported {res.stored:,} tiles from {path} ({res.kind}) into {res.source}, zooms "
                  f"{', '.join(map(str, res.zooms)) or '-'}; {res.blank:,} blank; cache now {res.cache_tiles:,} tiles, "
                  f"{plan.human_bytes(res.cache_bytes)}")
    for b in res.bad[:10]:
        err_console.print(f"[yellow]Skipped[/] {b}", soft_wrap=True)
    if len(res.bad) > 10:
        err_console.print(f"[yellow]Skipped[/] {len(res.bad) - 10} more bad file(s)")


@imagery_app.command("serve")
def imagery_serve(
    ctx: typer.Context,
    host: str = option("host", "127.0.0.1"),
    port: int = option("port", 8001),
):
    """Serve the imagery cache as XYZ tiles for JOSM and iD (Ctrl-C stops)."""
    from .imagery.serve import make_server

    with _open(ctx) as p:
        folder = p.path
    httpd = make_server(folder, host, port)
    shown = "127.0.0.1" if host == "0.0.0.0" else host
    names = httpd.service.sources()
    console.print(f"Serving {', '.join(names) or 'no cache yet'} on http://{shown}:{httpd.server_address[1]}/tiles/"
                  f"<source>/{{z}}/{{x}}/{{y}} (Ctrl-C stops)")
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        console.print("Stopped")
    finally:
        httpd.server_close()


@app.command("josm")
def josm_cmd(
    ctx: typer.Context,
    task: str = typer.Argument(..., help="Task number or z/x/y."),
    source: Optional[str] = SourceOpt,
    tiles_url: str = TilesUrlOpt,
    hashtags: Optional[str] = HashtagsOpt,
    josm_url: str = typer.Option("http://127.0.0.1:8111", "--josm-url", help="JOSM's remote control."),
    download: bool = typer.Option(False, "--download", help="Also download current OSM data (online rooms)."),
    open_: bool = typer.Option(False, "--open", help="Send the requests to JOSM now."),
    as_json: bool = JsonOpt,
):
    """Print (or --open) the JOSM remote-control requests for a task: imagery, locked boundary, zoom, changeset."""
    from .imagery import editors
    from .tasks.lifecycle import get_task

    with _open(ctx) as p:
        if hashtags:
            editors.set_hashtags(p, hashtags)
        s = editors.setup(p, get_task(p, task), source=source, tiles_url=tiles_url)
        urls = editors.josm_urls(p, s, josm_url=josm_url, download=download)
    for w in s.warnings:
        err_console.print(f"[yellow]Warning:[/] {w}", soft_wrap=True)
    if as_json:
        print(json.dumps([{"what": w, "url": u} for w, u in urls], ensure_ascii=False, indent=2))
    else:
        for _, u in urls:
            print(u)
    if open_:
        editors.open_in_josm(urls)
        err_console.print(f"Sent {len(urls)} requests to JOSM")


@app.command("id-url")
def id_url_cmd(
    ctx: typer.Context,
    task: str = typer.Argument(..., help="Task number or z/x/y."),
    source: Optional[str] = SourceOpt,
    tiles_url: str = TilesUrlOpt,
    hashtags: Optional[str] = HashtagsOpt,
    as_json: bool = JsonOpt,
):
    """Print the iD editor URL for a task, with the cached imagery, the boundary and the changeset comment."""
    from .imagery import editors
    from .tasks.lifecycle import get_task

    with _open(ctx) as p:
        if hashtags:
            editors.set_hashtags(p, hashtags)
        s = editors.setup(p, get_task(p, task), source=source, tiles_url=tiles_url)
        url = editors.id_url(p, s, tiles_url=tiles_url)
    if as_json:
        return _print_json({"task": task, "url": url, "warnings": list(s.warnings)})
    for w in s.warnings:
        err_console.print(f"[yellow]Warning:[/] {w}", soft_wrap=True)
    print(url)


# -- sync between sites and the room server ----------------------------------------------------------------

sync_app = _app("Work at several sites without internet: copy the project, then exchange changes by file.")
app.add_typer(sync_app, name="sync")


@sync_app.command("clone")
def sync_clone(
    ctx: typer.Context,
    dest: Path = typer.Argument(..., help="A new (or empty) folder for the other site's copy."),
    site_name: Optional[str] = typer.Option(None, "--site-name", help="A name for the new site, e.g. 'Bamako'."),
    no_imagery: bool = typer.Option(False, "--no-imagery", help="Leave the imagery cache out of the copy."),
    to_db: Optional[str] = typer.Option(None, "--to-db", help="Put the copy's state in PostgreSQL "
                                        "(postgresql://host/database[?schema=NAME]) instead of DEST/mapathon.sqlite."),
    villages: Optional[str] = option("villages", note="Kept for the new site, e.g. 'Torodo,Diakalel': other sites "
                                     "cannot claim their tasks for mapping."),
    tasks: Optional[str] = option("tasks", note="Kept for the new site: other sites cannot claim them for mapping."),
    as_json: bool = JsonOpt,
):
    """Copy the project for another site: the same project, with a site id of its own."""
    from .sync import clone_project

    vs, ts = _comma_list(villages), _comma_list(tasks)
    with _open(ctx) as p, clone_project(p, dest, imagery=not no_imagery, site_name=site_name, to_db=to_db,
                                        villages=vs, tasks=ts) as c:
        if as_json:
            return _print_json({"project": p.name, "dest": str(dest), "site": c.site, "db_url": c.db_url})
        console.print(f"Copied {p.name} to {dest} for another site (site {c.site[:8]}).")
        if vs or ts:
            from .sync.reservations import by_site

            mine = [r for r in by_site(c) if r.site == c.site]
            n = len(mine[0].keys) if mine else 0
            console.print(f"Reserved {n} task(s) for {site_name or 'the new site'}"
                          + (f" (villages: {', '.join(mine[0].villages)})" if mine and mine[0].villages else "")
                          + ", in both copies: other sites cannot claim them for mapping.", soft_wrap=True)
        if c.db_url:
            console.print(f"State in PostgreSQL: {c.db_url}")
    console.print("Exchange changes with 'mapathon sync export -o FILE' at one site and 'mapathon sync import FILE' "
                  "at the other.")


def _comma_list(text: Optional[str]) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


@sync_app.command("unreserve")
def sync_unreserve(
    ctx: typer.Context,
    villages: Optional[str] = option("villages", note="To set free."),
    tasks: Optional[str] = option("tasks", note="To set free."),
    site: Optional[str] = typer.Option(None, "--site", help="Set free everything reserved for this site (its name)."),
    actor: str = option("as", ..., note="An organizer."),
    as_json: bool = JsonOpt,
):
    """Lift a reservation made with 'sync clone --villages/--tasks': every site may then claim those tasks."""
    from .sync.reservations import unreserve

    with _open(ctx) as p:
        keys, sites = unreserve(p, actor, villages=_comma_list(villages), tasks=_comma_list(tasks), site=site)
    if as_json:
        return _print_json({"tasks": keys, "sites": sites})
    console.print(f"Lifted the reservation of {len(keys)} task(s) (reserved for {', '.join(sites)}). The next "
                  "exchange of bundles carries it to the other sites.", soft_wrap=True)


@sync_app.command("reservations")
def sync_reservations(ctx: typer.Context, as_json: bool = JsonOpt):
    """List the villages and tasks reserved for a site."""
    from .sync.reservations import by_site

    with _open(ctx) as p:
        rs = by_site(p)
        here = p.site
    if as_json:
        print(json.dumps([{"site": r.site, "site_name": r.site_name, "here": r.site == here, "villages": r.villages,
                           "tasks": r.keys} for r in rs], ensure_ascii=False, indent=2))
        return
    if not rs:
        console.print("No task is reserved for a site.")
    for r in rs:
        console.print(f"{r.label}{' (this site)' if r.site == here else ''}: {len(r.keys)} task(s)"
                      + (f"; villages {', '.join(r.villages)}" if r.villages else ""), soft_wrap=True)


@sync_app.command("export")
def sync_export(
    ctx: typer.Context,
    output: Path = option("output", ..., note="The bundle file (.zip)."),
    since: Optional[int] = typer.Option(None, "--since", help="Only changes after this mark (printed by an earlier "
                                        "export from this copy)."),
    with_contributions: bool = typer.Option(False, "--with-contributions",
                                            help="Also carry the submitted OSM files."),
    as_json: bool = JsonOpt,
):
    """Write this site's changes (its whole log, or what is newer than --since) to one file."""
    from .sync import export_bundle

    with _open(ctx) as p:
        r = export_bundle(p, output, since=since, with_contributions=with_contributions)
    if as_json:
        print(json.dumps(r.as_dict(), ensure_ascii=False, indent=2))
        return
    console.print(f"Wrote {r.events} event(s)" + (f" and {r.contributions} contribution(s)" if with_contributions else "")
                  + f" to {output}")
    console.print(f"Mark: {r.mark} (next time, 'mapathon sync export --since {r.mark}' writes only newer changes)")


@sync_app.command("import")
def sync_import(
    ctx: typer.Context,
    bundle: Path = typer.Argument(..., help="A bundle written by 'mapathon sync export' at another site."),
    trust: bool = option("trust", False),
    as_json: bool = JsonOpt,
):
    """Apply another site's changes. Importing twice is the same as once; the order of bundles does not matter."""
    from .sync import import_bundle

    with _open(ctx) as p:
        r = import_bundle(p, bundle, trust=trust)
    if as_json:
        print(json.dumps(r.as_dict(), ensure_ascii=False, indent=2))
        return
    console.print(f"{bundle}: {r.events_new} new event(s) of {r.events_in_bundle} from site {r.site[:8]}; "
                  f"{r.tasks_changed} task(s) changed" + (f", {len(r.tasks_created)} created by splits"
                                                           if r.tasks_created else "")
                  + (f", {len(r.tasks_removed)} removed (their split lost)" if r.tasks_removed else ""))
    if r.volunteers_new:
        console.print("New volunteers: " + ", ".join(r.volunteers_new))
    if r.contributions_new:
        console.print(f"New contributions: {r.contributions_new}")
    if r.survey_new:
        console.print(f"New survey submissions: {r.survey_new}")
    if r.conflicts_new:
        console.print(f"[yellow]{r.conflicts_new} new conflict(s)[/] between the sites' changes: "
                      "see 'mapathon status'", soft_wrap=True)


@sync_app.command("show")
def sync_show(ctx: typer.Context, bundle: Path = typer.Argument(..., help="A bundle file."),
              trust: bool = option("trust", False),
              as_json: bool = JsonOpt):
    """Check a bundle (signature, checksums, format) and show what it holds, without importing it."""
    from .sync import bundle_info

    with _open(ctx) as p:
        info = bundle_info(bundle, p, trust=trust)
    if as_json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return
    c = info.get("counts") or {}
    console.print(f"{bundle}: intact; project {info.get('project_name')} ({info['project_id']}), site "
                  f"{info['site'][:8]}, made {_when(info.get('created'))}; {c.get('events', 0)} event(s), "
                  f"{c.get('contributions', 0)} contribution(s); format {info['version']}")


# -- field surveys with ODK ---------------------------------------------------------------------------------

survey_app = _app("Field surveys with ODK Collect, offline: forms, submissions, imports.")
app.add_typer(survey_app, name="survey")


@survey_app.command("merge")
def survey_merge_cmd(
    ctx: typer.Context,
    base: Optional[Path] = option("data", note="Here: the data the answers are matched with."),
    findings: Optional[Path] = option("geojson", note="ambiguous matches and differing values."),
    again: bool = typer.Option(False, "--again", help="Also the submissions an earlier run conflated."),
    as_json: bool = JsonOpt,
):
    """Match survey submissions with the data and hand each surveyor's changes to the next 'mapathon merge'."""
    from .fsutil import atomic_path
    from .survey.conflate import findings_geojson, survey_merge

    with _open(ctx) as p:
        res = survey_merge(p, base=base, again=again)
    if findings is not None:
        with atomic_path(findings) as tmp:
            tmp.write_text(json.dumps(findings_geojson(res.findings), ensure_ascii=False), encoding="utf-8")
    if as_json:
        print(json.dumps(res.as_dict(), ensure_ascii=False, indent=2))
        return
    counts = res.counts()
    console.print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no new submission",
                  f"({res.skipped} conflated before)" if res.skipped else "")
    for c in res.contributions:
        console.print(f"contribution {c.id}: {c.original_name} by {c.volunteer}" + (" (already there)" if c.already else ""))
    for f in res.findings:
        console.print(f"[yellow]finding:[/] {f.message}", soft_wrap=True)
    if res.contributions:
        console.print("Next: 'mapathon merge' applies them with the volunteers' files.")


@survey_app.command("form")
def survey_form(
    ctx: typer.Context,
    preset: str = typer.Option("water", "--preset", help="water, buildings, or a preset YAML file of your own."),
    lang: str = option("lang", "fr,en,bm", note="Here: the form's label languages, comma-separated, the first the "
                       "default (fr and en always; bm, Bambara, where the preset has it)."),
    out: Optional[Path] = option("output", note="Here: the XLSForm (.xlsx), its XForm .xml beside."),
    base: Optional[Path] = option("data", note="Here: the existing features that go with the form."),
    as_json: bool = JsonOpt,
):
    """Make a survey form (XLSForm and XForm) and offer it to ODK Collect through the room server."""
    from .survey import forms

    with _open(ctx) as p:
        chosen = forms.load_preset(preset)
        info = forms.publish(p, chosen, forms.parse_langs(lang), base=base, out=out)
    if as_json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return
    console.print(f"Form {info['id']} version {info['version']} ({', '.join(info['languages'])}): "
                  f"{info['existing']} existing feature(s) to pick on the map"
                  + (f" from {info['existing_from']}" if info["existing_from"] else "")
                  + (f"; wrote {', '.join(info['written'])}" if info["written"] else ""), soft_wrap=True)
    if chosen.get("existing") and info["existing_from"] is None:
        console.print("No merged data yet: make the form again after 'mapathon merge', or give --data FILE.osm.pbf, "
                      "for the existing features to go with it.", soft_wrap=True)


@survey_app.command("list")
def survey_list(
    ctx: typer.Context,
    village: Optional[str] = VillageOpt,
    surveyor: Optional[str] = typer.Option(None, "--surveyor", help="Only this surveyor."),
    as_json: bool = JsonOpt,
):
    """The survey submissions kept in the project, per village and surveyor."""
    from .survey.store import list_submissions

    with _open(ctx) as p:
        subs = list_submissions(p, village=village, surveyor=surveyor)
    if as_json:
        print(json.dumps([s.as_dict() for s in subs], ensure_ascii=False, indent=2))
        return
    table = compact_table("village", "surveyor", "form", "received", "updates", "tags", "photos")
    for s in sorted(subs, key=lambda s: (s.village or "", s.surveyor, s.received)):
        table.add_row(s.village or "-", s.surveyor, s.form_id, _when(s.received), s.picked_feature or "new",
                      str(len(s.tags)), str(len(s.photos)))
    console.print(table)
    console.print(f"{len(subs)} submission(s)")


@survey_app.command("import")
def survey_import(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="ODK Collect's instances folder, or an ODK Central / Kobo export (.csv, .zip)."),
    surveyor: Optional[str] = option("as", None, note="Here: the surveyor of instances that do not name one."),
    form: Optional[str] = typer.Option(None, "--form", help="The form of a CSV export (default: from its name)."),
    as_json: bool = JsonOpt,
):
    """Bring in survey submissions without a network: a phone's instances folder, Central or Kobo exports."""
    from .survey.importers import import_path

    with _open(ctx) as p:
        r = import_path(p, path, surveyor=surveyor, form_id=form)
    if as_json:
        print(json.dumps(r.as_dict(), ensure_ascii=False, indent=2))
    else:
        console.print(f"{path}: {len(r.stored)} submission(s) stored, {len(r.already)} already there, "
                      f"{len(r.failed)} refused", soft_wrap=True)
        for line in r.failed:
            err_console.print(f"[yellow]Refused:[/] {line}", soft_wrap=True)
    if r.failed:
        raise typer.Exit(2 if r.stored or r.already else 1)


@app.command("serve")
def serve_cmd(
    ctx: typer.Context,
    host: str = option("host", "0.0.0.0"),
    port: int = option("port", 8000),
    token: Optional[str] = typer.Option(None, "--token", envvar="MAPATHON_ORGANIZER_TOKEN",
                                        help="Organizer token (default: a new random one, printed at start)."),
    max_upload_mb: float = typer.Option(20, "--max-upload-mb", help="Largest .osm file volunteers may upload."),
    lang: Optional[str] = option("lang", note="Of the pages (default: the project's)."),
    session_hours: float = typer.Option(12, "--session-hours", help="A sign-in unused this many hours expires."),
    sign_ins_per_minute: int = typer.Option(10, "--sign-ins-per-minute",
                                            help="New names one computer may sign in a minute (0: no limit)."),
):
    """The room server: volunteers claim, map and hand in tasks from their browser; a progress board."""
    from .project import open_project, resolve_dir
    from .server import run

    from .i18n import check_lang

    folder = resolve_dir(ctx.find_root().obj["project"])
    open_project(folder).close()  # a clear error before anything starts
    run(folder, host=host, port=port, token=token, max_upload_mb=max_upload_mb, lang=check_lang(lang),
        session_hours=session_hours, sign_ins_per_minute=sign_ins_per_minute)


def main() -> None:
    """Entry point of the ``mapathon`` command."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("Interrupted")
        sys.exit(130)
