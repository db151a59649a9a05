"""The README and docs/ stay true: every command block marked runnable runs on the demo, every
example of the README's verb table runs, every relative link leads somewhere, and the README
stays short.

A runnable block is a ```bash fence on the line after `<!-- runnable -->` (GitHub hides the
comment and still highlights the block). The blocks of one page run in order, each as one bash
script that stops at the first failing command, in a fresh folder that holds a copy of `configs/`
and the demo's results as `make demo` leaves them (the Makefile's own demo commands made them).
There `.venv/bin/python` runs this checkout's harness, and so does `python` on the PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

MARKER = "<!-- runnable -->"
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
PYTHON = ".venv/bin/python"


def runnable_blocks(text: str) -> list[str]:
    """The bash blocks marked runnable in a markdown text, in order."""
    lines = text.splitlines(keepends=True)
    blocks: list[str] = []
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        if i + 1 == len(lines) or lines[i + 1].rstrip() != "```bash":
            raise ValueError(f"line {i + 1}: {MARKER} must be followed by a ```bash fence")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].rstrip() == "```"), None)
        if end is None:
            raise ValueError(f"line {i + 2}: the fence is never closed")
        blocks.append("".join(lines[i + 2 : end]))
    return blocks


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text without markup, lower case, punctuation
    dropped (letters, digits, `_`, `-` and spaces kept), spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def _outside_fences(text: str) -> list[str]:
    """The lines of a markdown text that are not inside a fenced block."""
    kept, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return kept


def anchors(text: str) -> set[str]:
    """Every heading's anchor, a repeated one numbered as GitHub numbers it (`-1`, `-2`)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _outside_fences(text):
        heading = re.match(r"#{1,6} +(.*?)#*\s*$", line)
        if heading is None:
            continue
        base = slug(heading[1])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def dead_links(page: Path) -> list[str]:
    """The relative links of a markdown page (outside code) whose file is missing, or whose
    `#anchor` names no heading of the markdown page it leads to."""
    lines = _outside_fences(page.read_text())
    prose = "\n".join(re.sub(r"`[^`]*`", "code", line) for line in lines)
    dead = []
    for target in LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
            continue
        name, _, anchor = target.partition("#")
        leads_to = (page.parent / name).resolve() if name else page
        if not leads_to.exists():
            dead.append(target)
            continue
        if anchor and leads_to.suffix == ".md" and anchor not in anchors(leads_to.read_text()):
            dead.append(target)
    return dead


def demo_commands() -> list[str]:
    """The Makefile's `demo` recipe, `$(PY)` spelled as the README spells it."""
    recipe = (REPO / "Makefile").read_text().split("\ndemo:", 1)[1].splitlines()[1:]
    commands = []
    for line in recipe:
        if not line.startswith("\t"):
            break
        commands.append(line.strip().replace("$(PY)", PYTHON).replace("$$", "$"))
    return commands


def verb_table() -> list[tuple[str, str, str]]:
    """The README's verb table: (verb, what it takes, its example with `harness` spelled out)."""
    section = README.read_text().split("\n## Every verb\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        example = re.findall(r"`([^`]*)`", cells[3])[0]
        assert example.startswith("harness "), example
        rows.append((cells[0].strip("`"), cells[1], PYTHON + " -m " + example))
    return rows


RUNNABLE = {page: runnable_blocks(page.read_text()) for page in PAGES}


def test_the_readme_opens_with_make_demo_and_make_test_and_stays_short() -> None:
    text = README.read_text()
    opening = text.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split("#")[0].strip() for line in opening] == ["make demo", "make test"]
    assert text.index("```bash") < text.index("\n## ")
    assert len(README.read_bytes()) <= 12_000


def test_runnable_blocks_are_found_in_the_readme_and_the_docs() -> None:
    counts = {page.name: len(blocks) for page, blocks in RUNNABLE.items() if blocks}
    assert counts.get("README.md", 0) >= 2, counts
    assert sum(counts.values()) >= 12, counts
    assert len(counts) >= 10, counts


def test_a_marker_without_a_bash_fence_is_an_error() -> None:
    with pytest.raises(ValueError, match="must be followed by"):
        runnable_blocks(f"{MARKER}\n```python\nprint()\n```\n")
    with pytest.raises(ValueError, match="never closed"):
        runnable_blocks(f"{MARKER}\n```bash\nls\n")
    assert runnable_blocks(f"text\n{MARKER}\n```bash\nls\npwd\n```\n```bash\nno\n```\n") == [
        "ls\npwd\n"
    ]


def test_slugs_follow_github() -> None:
    assert slug("Asking your own questions: `query`") == "asking-your-own-questions-query"
    assert slug("(o) and (p): stats and export of 1,000,000 answers") == (
        "o-and-p-stats-and-export-of-1000000-answers"
    )
    assert slug("The judge's run") == "the-judges-run"
    assert slug("Batch mode") == "batch-mode"
    assert slug("The legacy results file: `pilot-json`") == "the-legacy-results-file-pilot-json"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n### b_c\n") == {"a", "a-1", "b_c"}


def test_the_link_check_finds_a_dead_file_and_a_dead_anchor(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# A heading\n\n## Twice\n## Twice\n")
    (tmp_path / "picture.png").write_bytes(b"")
    page = tmp_path / "a.md"
    page.write_text(
        "# Top\n"
        "[ok](sub/b.md) [anchor](sub/b.md#a-heading) [second](sub/b.md#twice-1) [self](#top)\n"
        "![picture](picture.png) [web](https://example.com/x.md) [`code [x]`](sub/b.md)\n"
        "[dead](missing.md) [dead anchor](sub/b.md#nope) [dead self](#bottom)\n"
        "`[in code](nowhere.md)`\n"
        "```\n[in a fence](nowhere.md)\n```\n"
    )
    assert dead_links(page) == ["missing.md", "sub/b.md#nope", "#bottom"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_and_a_heading(page: Path) -> None:
    assert dead_links(page) == []


def test_the_verb_table_names_every_verb_with_what_it_takes() -> None:
    from harness.cli.main import _parser

    def positionals(parser: argparse.ArgumentParser) -> set[str]:
        found: set[str] = set()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found |= positionals(sub)
            elif not action.option_strings:
                found.add(action.dest)
        return found

    verbs = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    table = {verb.split()[0]: takes for verb, takes, _ in verb_table()}
    assert sorted(table) == sorted(verbs.choices)
    for name, parser in verbs.choices.items():
        dests = positionals(parser)
        if "config" in dests:
            expected = "CONFIG"
        elif dests & {"output", "ledger", "ledgers"}:
            expected = "OUTPUT"
        else:
            expected = "neither"
        assert table[name] == expected, name


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a copy of configs/, a `.venv/bin/python` that runs this checkout's harness,
    and the demo's results, made by the Makefile's demo commands."""
    folder: Path = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "configs", folder / "configs")
    bin_folder = folder / ".venv" / "bin"
    bin_folder.mkdir(parents=True)
    python = bin_folder / "python"
    # `run` and `rerun` exit 1 when jobs failed for good, as the demo's injected 400s make a few
    # do: a documented run that ran counts; a wrong command (exit 2) still fails
    python.write_text(
        f'#!/bin/sh\n{shlex.quote(sys.executable)} "$@"\ncode=$?\n'
        'if [ "$code" -eq 1 ] && [ "$2" = harness ] && { [ "$3" = run ] || [ "$3" = rerun ]; }\n'
        "then exit 0; fi\nexit $code\n"
    )
    python.chmod(0o755)
    commands = demo_commands()
    assert len(commands) == 5 and all(c.startswith(f"{PYTHON} -m harness ") for c in commands)
    for command in commands:
        _bash(command, folder)
    return folder


def _bash(script: str, folder: Path) -> None:
    """Run a script in bash from `folder`, stopping at its first failing command."""
    env = {
        **os.environ,
        "PATH": f"{folder / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-x", "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"exit {done.returncode}:\n{script}\n--- stdout\n{done.stdout[-3000:]}\n"
        f"--- stderr (each command as bash ran it, after +)\n{done.stderr[-3000:]}"
    )


def _copy(demo: Path, folder: Path) -> Path:
    shutil.copytree(demo, folder, symlinks=True)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(
    "page",
    [page for page, blocks in RUNNABLE.items() if blocks],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_every_runnable_block_runs_on_the_demo(page: Path, demo: Path, tmp_path: Path) -> None:
    folder = _copy(demo, tmp_path / "project")
    for block in RUNNABLE[page]:
        _bash(block, folder)


@pytest.mark.slow
def test_every_example_of_the_verb_table_runs_on_the_demo(demo: Path, tmp_path: Path) -> None:
    folder = _copy(demo, tmp_path / "project")
    examples = [example for _, _, example in verb_table()]
    _bash("\n".join(examples) + "\n", folder)
