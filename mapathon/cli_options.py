"""The options shared by the commands, defined once (rasterio's ``rio/options.py`` style).

:data:`SHARED` is the one table: a field (what the library calls the parameter, as in
:attr:`mapathon.errors.MapathonError.field`), its flag(s) on the command line and what it
means. The same flag means the same thing on every command; a command may add a short note
after the meaning (``--village`` "Only this village. With --next: ..."). The CLI's error
handler turns a field back into its flag with :func:`flag_for`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import typer


@dataclass(frozen=True)
class Shared:
    field: str
    flags: tuple[str, ...]
    meaning: str


SHARED: dict[str, Shared] = {s.field: s for s in (
    Shared("project", ("--project", "-p"), "Project folder (default: $MAPATHON_PROJECT, else the current folder)."),
    Shared("as", ("--as",), "The volunteer doing this (their name)."),
    Shared("comment", ("--comment", "-m"), "A comment kept in the task's history."),
    Shared("json", ("--json",), "Print JSON for scripts instead of tables."),
    Shared("new", ("--new",), "The --as name is a new volunteer, though close to a registered one's."),
    Shared("village", ("--village",), "A village of the project: its name, in any case, with or without accents."),
    Shared("villages", ("--villages",), "Villages of the project, comma-separated (each as for --village)."),
    Shared("tasks", ("--tasks",), "Tasks: numbers, ranges or z/x/y addresses, e.g. 3,5-8,16/31126/30100."),
    Shared("bbox", ("--bbox",), "A box W,S,E,N in degrees."),
    Shared("output", ("--output", "-o"), "The file to write."),
    Shared("lang", ("--lang",), "Language: en or fr."),
    Shared("format", ("--format", "-f"), "Format of the file written."),
    Shared("data", ("--data",), "OSM data (.osm.pbf); default: the project's merged/latest.osm.pbf."),
    Shared("base", ("--base",), "The OSM extract the merge is made on."),
    Shared("html", ("--html",), "Also write the credit and quality report as a self-contained HTML page."),
    Shared("geojson", ("--geojson",), "Also write a GeoJSON layer (for JOSM, QGIS):"),
    Shared("check", ("--check",), "What the quality checks look at: the changes and the data within 50 m of them "
                                  "(changes), the whole snapshot (all), or nothing (none)."),
    Shared("zoom", ("--zoom", "-z"), "Web-mercator tile zoom(s)."),
    Shared("source", ("--source", "-s"), "Imagery source (its name)."),
    Shared("title", ("--title",), "A readable title for the imagery source."),
    Shared("attribution", ("--attribution",), "Attribution to show with the imagery."),
    Shared("host", ("--host",), "Address to listen on (0.0.0.0: every network of this computer)."),
    Shared("force", ("--force",), "Do it even though a safety check refuses it."),
    Shared("organizer", ("--organizer",), "The organizer role."),
    Shared("csv_dialect", ("--csv-dialect",), "For .csv files: plain (the default: ',' and '1.5') or excel-fr "
                                               "(';' and '1,5', opens in a French Excel)."),
    Shared("tiles_url", ("--tiles-url",), "Address of 'mapathon imagery serve' as the volunteers' computers reach it."),
    Shared("hashtags", ("--hashtags",), "Changeset hashtags, e.g. '#mapathon #dianguirde' (remembered for the project)."),
    Shared("licence", ("--licence",), "Licence or permission to trace for OSM."),
    Shared("port", ("--port",), "Port to listen on."),
    Shared("trust", ("--trust",), "Accept a sync bundle not signed with this project's key (a copy cloned before "
           "bundles were signed): only for a file you know the origin of."),
)}

# fields the library names that are not shared options: their flag is --field-with-hyphens
_OTHER_FLAGS = {"as": "--as"}


def flag_for(field: str | None) -> str | None:
    """The command-line flag for a library error's field: 'village' -> '--village', 'max_size' -> '--max-size'."""
    if field is None:
        return None
    if field in SHARED:
        return SHARED[field].flags[0]
    return _OTHER_FLAGS.get(field, "--" + field.replace("_", "-"))


def option(field: str, default: Any = None, note: str | None = None, **kw) -> Any:
    """A typer option for a shared field: its flags and meaning from :data:`SHARED`, plus a note."""
    s = SHARED[field]
    help_ = s.meaning + (f" {note}" if note else "")
    return typer.Option(default, *s.flags, help=help_, **kw)


def hidden_alias(default: Any, *flags: str, **kw) -> Any:
    """An old spelling, kept working but not shown in --help or the reference."""
    return typer.Option(default, *flags, hidden=True, **kw)
