"""The command reference in docs/ is generated from the CLI and must match it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def test_command_reference_is_current(tmp_path):
    """docs/commands.md is what 'make docs' writes: typer's reference with the exit codes, the selection
    grammar and the table of shared options on top."""
    typer_bin = Path(sys.executable).parent / "typer"
    if not typer_bin.exists() and not shutil.which("typer"):
        pytest.skip("the typer command is not installed")
    out = tmp_path / "commands.md"
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_commands_doc.py"), str(out)], check=True,
                   capture_output=True)
    current = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == current, "docs/commands.md is out of date: run 'make docs'"
    for code in ("| 2 |", "| 3 |", "| 130 |"):
        assert code in current


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
