"""Write docs/commands.md: typer's reference of every command, with what typer cannot generate at the
top (exit codes, how villages, tasks and boxes are written, the shared options from
mapathon/cli_options.py). Run by 'make docs'; tests/test_docs.py checks the file is current.

    python tools/make_commands_doc.py [OUTPUT]      (default: docs/commands.md)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mapathon.cli_options import SHARED  # noqa: E402

INTRO = """\
## Exit codes

Every command ends with one of these codes (for scripts):

| code | meaning |
|------|---------|
| 0 | done |
| 1 | failed: a file, a task or the network said no (the message says which) |
| 2 | wrong use of the command: a missing or unknown option, a value of the wrong form, options that do not go together |
| 3 | refused: the project's rules forbid this change (a task held by someone else, a validator's own work, ...) |
| 130 | interrupted (Ctrl-C); what was done before is kept |

A mistake is one line on the screen, `Error: ...`, that names the option and the value.

## Villages, tasks and boxes

Every command reads them the same way (the room server too):

* `--village NAME`: a village of the project. Case, accents, extra spaces, hyphens and
  apostrophes do not matter: `dianguirde`, `DIANGUIRDÉ` and `Dianguirdé` are the same village.
  A close misspelling is refused with "did you mean ...?".
* `--tasks LIST`: task numbers, ranges and z/x/y addresses, separated by commas:
  `3`, `3-7`, `3,5,9-12`, `16/31126/30100`.
* `--bbox W,S,E,N`: a box in degrees, west < east, south < north. A box across the
  antimeridian (180°) is refused: give one box on each side.

## Options shared by the commands

An option name means the same thing on every command that has it. A command may add a
note after this meaning in its own help.

| option | meaning |
|--------|---------|
{table}
`-o/--output` is the file a command makes. Files written besides it have their own options:
`merge --upload/--josm/--html/--geojson`, `check --geojson`, `report --html/--geojson`,
`status --map`.

`--json` prints JSON for scripts on every command but the two servers (`serve`,
`imagery serve`). A command that changes a task prints the task, in the same shape as
`tasks --json`.

`grid --as` may be left out when the project has exactly one organizer (it is them), or none.

Old spellings still work but are not shown: `merge --report` (now `--html`) and
`merge --findings` (now `--geojson`).

"""


def render(output: Path) -> None:
    typer_bin = Path(sys.executable).parent / "typer"
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "commands.md"
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        subprocess.run([str(typer_bin) if typer_bin.exists() else "typer", "mapathon.cli", "utils", "docs",
                        "--name", "mapathon", "--title", "mapathon command reference", "--output", str(raw)],
                       check=True, capture_output=True, env=env, cwd=ROOT)
        text = raw.read_text(encoding="utf-8")
    table = "".join(f"| `{', '.join(s.flags)}` | {s.meaning.replace('|', '/')} |\n" for s in SHARED.values())
    head, sep, rest = text.partition("**Usage**:")
    tmp_out = output.with_name(output.name + ".tmp")
    tmp_out.write_text(head + INTRO.format(table=table) + sep + rest, encoding="utf-8")
    tmp_out.replace(output)


if __name__ == "__main__":
    render(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "commands.md")
