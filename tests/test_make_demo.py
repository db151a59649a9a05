"""`make demo` as the Makefile writes it: the demo's run ends with jobs failed for good (its
injected 400s), the recipe goes on to the `rerun` the run suggests, which brings them in, and
then scores, summarizes and reports the answers."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from tests.conftest import REPO, results


def demo_recipe() -> list[str]:
    """The demo target's command lines, as make hands them to the shell."""
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    assert recipe is not None
    lines = recipe.group(1).splitlines()
    return [line[1:].replace("$(PY)", sys.executable).replace("$$", "$") for line in lines]


def test_make_demo_shows_jobs_failed_for_good_and_the_rerun_that_brings_them_in(tmp_path):
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    ledger = tmp_path / "results" / "demo" / "ledger.jsonl"
    run, rerun, *rest = demo_recipe()
    assert run.split(" || ")[0].endswith("-m harness run configs/demo.toml")
    assert rerun.endswith("-m harness rerun configs/demo.toml")

    said = _sh(run, tmp_path)
    failed = {r["key"] for r in results(ledger) if r["status"] == "error"}
    assert 2 <= len(failed) <= 6
    assert f"Still failing: {len(failed)} FatalError. To retry them:" in said
    assert "-m harness rerun configs/demo.toml --error-type FatalError" in said

    said = _sh(rerun, tmp_path)
    assert f"Rerunning {len(failed)} failed job(s)." in said
    latest = {r["key"]: r for r in results(ledger)}
    assert len(latest) == 192 and {r["status"] for r in latest.values()} == {"ok"}
    assert len(results(ledger)) == 192 + len(failed)  # the failures stay, as history

    for line in rest:  # score, stats, report
        _sh(line, tmp_path)
    assert (tmp_path / "results" / "demo" / "report.html").exists()


def _sh(line: str, cwd) -> str:
    """Run a recipe line as make does (`/bin/sh -c`); its output, once it exited 0."""
    done = subprocess.run(["/bin/sh", "-c", line], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, (line, done.stdout, done.stderr)
    return done.stdout
