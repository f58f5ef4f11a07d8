"""Every command the README and the guides show parses: its subcommand exists, ``--help``
works, and each flag it uses is one of that subcommand's options (so a renamed flag cannot
leave the front door wrong). Also: the README stays a front door (<= 250 lines) and the
scripts it names exist."""

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from gankit.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "docs" / "guide.md", ROOT / "docs" / "api.md",
        ROOT / "docs" / "results.md"]


def _commands(path: Path) -> list[str]:
    """``gankit ...`` lines of the file's bash blocks (continuation lines joined, comments
    cut) and its inline ``gankit ...`` code spans."""
    text = path.read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|;", line.split(" #")[0]):
                part = part.strip()
                if part.startswith("gankit "):
                    out.append(part)
    for span in re.findall(r"`(gankit [^`]+)`", text):  # inline commands in the prose and tables
        out.append(" ".join(span.split()))
    return out


ALL = [(p.name, c) for p in DOCS for c in _commands(p)]


def test_the_docs_show_commands():
    assert len([c for name, c in ALL if name == "README.md"]) >= 8


@pytest.mark.parametrize("where, command", ALL, ids=[f"{w}:{c[:60]}" for w, c in ALL])
def test_a_documented_command_parses(where, command):
    args = shlex.split(command)[1:]
    name = args[0]
    assert name in cli.commands, f"{where}: unknown subcommand in {command!r}"
    sub = cli.commands[name]
    res = CliRunner().invoke(cli, [name, "--help"])
    assert res.exit_code == 0, res.output
    opts = {o for p in sub.params for o in (*p.opts, *p.secondary_opts)}
    for a in args[1:]:
        if a.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", a):
            flag = a.split("=")[0]
            assert flag in opts, f"{where}: {command!r} uses {flag}, not an option of {name}"


def test_readme_is_a_front_door_and_names_what_exists():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for rel in re.findall(r"\]\(((?:docs|examples|scripts)/[^)#]+)\)", text) + \
            re.findall(r"`((?:examples|scripts)/[\w./-]+)`", text):
        assert (ROOT / rel).exists(), rel
    assert "python -m pytest -q" in text  # the test command .ci/run runs
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text()
