"""`harness report` without a browser: what the page carries (records, statistics, provenance),
what it leaves out and says so, bad input, the figure files, shard trees, secrets."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shutil
import webbrowser
import zlib

import numpy as np
import orjson
import pytest

from harness.analysis.stats import Rate, Stats, compute_stats
from harness.analysis.uncertainty import MEASURES, UNSURE_SIGN
from harness.analysis.view import open_view
from harness.report.browser import payload
from harness.report.figures import rates_figure
from harness.report.figures_answers import roc_points
from harness.report.made import Made
from harness.report.read import FIELDS, Limits, report_reading
from harness.scrub import SECRETS
from harness.terminal import command_line
from tests.harness.analysis.ledgers import answer, logprobs, write_ledger
from tests.harness.report.project import SECRET, SECRET_ENV, VARIANTS, write_project


def page_data(path):
    """The page's overview JSON and its records, decoded as the page decodes them."""
    html = path.read_text()
    meta = re.search(r'<script type="application/json" id="meta">(.*?)</script>', html, re.S)
    packed = re.search(r'id="records-data">([^<]*)</script>', html)
    records = orjson.loads(gzip.decompress(base64.b64decode(packed.group(1))))
    return json.loads(meta.group(1)), records


@pytest.fixture
def project(tmp_path):
    return write_project(tmp_path)


def test_the_page_carries_every_latest_record_with_its_labels(project, run_cli):
    code, out, _ = run_cli("report", project.output)
    assert code == 0, out
    target = project.output / "report.html"
    assert f"Report: {target}" in out and "Open it in a browser: file://" in out
    meta, data = page_data(target)
    latest = project.latest()
    rows = data["rows"]
    assert meta["records"] == len(latest) == len(rows["variant"])
    shown = {
        (data["variants"][v], data["prompts"]["id"][p], s): (ok, text)
        for v, p, s, ok, text in zip(
            rows["variant"], rows["prompt"], rows["sample"], rows["ok"], rows["text"], strict=True
        )
    }
    for record in latest:
        ok, text = shown[(record["variant"], record["prompt_id"], record["sample"])]
        assert ok == (record["status"] == "ok")
        expected = record["full_response"] if ok else record["error"]["message"]
        assert text == expected
    claims = data["scorers"][0]
    assert claims["name"] == "claims"
    given = [claims["labels"][c] for c in rows["labels"]["claims"] if c >= 0]
    assert sorted(given) == sorted(
        "exists" if "exists" in r["full_response"] else "denies"
        for r in latest
        if r["status"] == "ok"
    )


def test_the_statistics_are_those_of_harness_stats(project, run_cli):
    run_cli("report", project.output, "--resamples", "50")
    meta, _ = page_data(project.output / "report.html")
    stats = compute_stats(
        project.output / "ledger.jsonl", project.output / "scores.jsonl", resamples=50
    )
    expected = json.loads(stats.as_json())
    assert meta["stats"]["rates"] == expected["rates"]
    assert meta["stats"]["comparisons"] == expected["comparisons"]
    assert meta["stats"]["separations"] == expected["separations"]


def test_the_overview_has_each_runs_provenance_and_the_variants_counts(project, run_cli):
    run_cli("report", project.output)
    meta, _ = page_data(project.output / "report.html")
    (run,) = meta["runs"]
    assert run["git_revision"].startswith("0123456789ab") and run["git_dirty"] is True
    assert run["host"] == "testhost" and run["config_path"] == "/somewhere/report.toml"
    prompts_file = project.output.parent / "prompts.json"
    assert run["prompts"]["file_sha256"] == hashlib.sha256(prompts_file.read_bytes()).hexdigest()
    assert run["prompts"]["content_sha256"] == "c" * 64  # the prompts sent, another number
    assert {m["base_url"] for m in run["models"]} == {"http://127.0.0.1:9/v1"}
    assert {m["revision"] for m in run["models"]} == {"rev-a", "rev-b", "rev-g"}
    counts = {v["variant"]: (v["ok"], v["failed"], v["pending"]) for v in meta["variants"]}
    assert counts == {
        VARIANTS[0]: (11, 1, 0),  # p03 failed, then answered; p05 failed
        VARIANTS[1]: (11, 1, 0),
        VARIANTS[2]: (12, 0, 0),
    }


def test_pending_is_unknown_without_a_run_line_that_planned_it(project, run_cli):
    ledger = project.output / "ledger.jsonl"
    write_ledger(ledger.with_name("bare.jsonl"), project.records)
    ledger.unlink()
    ledger.with_name("bare.jsonl").rename(ledger)
    code, out, _ = run_cli("report", project.output)
    assert code == 0
    meta, _ = page_data(project.output / "report.html")
    assert all(v["pending"] is None for v in meta["variants"])
    assert "pending jobs unknown" in out
    assert "prompt texts not shown" in out  # no run line says where the prompts are


def test_no_scores_says_what_to_run_with_this_python_and_still_shows_the_rest(
    project, run_cli, monkeypatch
):
    monkeypatch.setattr(shutil, "which", lambda name: None)  # `python` is not this one
    (project.output / "scores.jsonl").unlink()
    code, out, _ = run_cli("report", project.output)
    assert code == 0
    expected = command_line("score", "/somewhere/report.toml", "--output", str(project.output))
    assert not expected.startswith("python ")
    # the run's config has no [[scorers]]: `score` alone would be refused
    first = "add a [[scorers]] table to /somewhere/report.toml (docs/scoring.md), then "
    assert f"No scores yet: {first}{expected}, then make the report again" in out
    meta, data = page_data(project.output / "report.html")
    assert meta["next_command"] == expected
    assert meta["needs_scorers"] == "/somewhere/report.toml"
    assert {r["scorer"] for r in meta["stats"]["rates"]} == {"(status)"}
    assert len(data["rows"]["variant"]) == len(project.latest())
    html = (project.output / "report.html").read_text()
    assert html.count("<svg") >= 4  # rates of failures, distributions, timeline, ROC


def test_a_secret_the_environment_holds_never_reaches_the_page(project, run_cli, monkeypatch):
    for slot, empty in (("_known", set()), ("_text", []), ("_bytes", [])):
        monkeypatch.setattr(SECRETS, slot, empty)  # learned here, forgotten after the test
    monkeypatch.setenv(SECRET_ENV, SECRET)
    run_cli("report", project.output)
    target = project.output / "report.html"
    _, data = page_data(target)
    assert SECRET not in target.read_text()
    assert SECRET not in orjson.dumps(data).decode()
    assert any("[redacted]" in text for text in data["rows"]["text"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scorer", "nope"], "no current scores from nope"),
        (["--label", "nope"], "no current score has the label 'nope'"),
        (["--scorer", "refusal", "--label", "exists"], "refusal gives no label 'exists'"),
        (["--variant", "delta@t0-dddddd"], "no variant delta@t0-dddddd"),
        (["--prompts", "missing.json"], "missing.json"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(project, run_cli, args, message):
    code, out, err = run_cli("report", project.output, *args)
    assert code == 2, out
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (project.output / "report.html").exists()
    assert not list(project.output.glob(".report.html.*"))


def test_a_missing_folder_or_an_empty_ledger_is_exit_2(tmp_path, run_cli):
    code, _, err = run_cli("report", tmp_path / "nothing")
    assert code == 2 and "no such ledger" in err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "ledger.jsonl").write_bytes(b"")
    code, _, err = run_cli("report", tmp_path / "empty")
    assert code == 2 and "no result records" in err
    assert not (tmp_path / "empty" / "report.html").exists()


def test_a_variant_narrows_every_part_of_the_page(project, run_cli):
    only = ["--variant", VARIANTS[0], "--variant", VARIANTS[2]]
    assert run_cli("report", project.output, *only)[0] == 0
    meta, data = page_data(project.output / "report.html")
    assert set(data["variants"]) == {VARIANTS[0], VARIANTS[2]}
    assert {v["variant"] for v in meta["variants"]} == {VARIANTS[0], VARIANTS[2]}
    pairs = {(c["variant_a"], c["variant_b"]) for c in meta["stats"]["comparisons"]}
    assert pairs == {(VARIANTS[0], VARIANTS[2])}


def test_a_variant_is_named_as_rerun_names_it_by_its_model_too(project, run_cli):
    name = VARIANTS[1].split("@")[0]
    picked = [v for v in VARIANTS if v.split("@")[0] == name]
    assert run_cli("report", project.output, "--variant", name)[0] == 0
    meta, _ = page_data(project.output / "report.html")
    assert sorted(v["variant"] for v in meta["variants"]) == sorted(picked)


def test_figures_are_written_as_svg_and_png_and_the_svg_is_reproducible(project, run_cli, tmp_path):
    for folder in ("one", "two"):
        code, _, _ = run_cli("report", project.output, "--figures", tmp_path / folder)
        assert code == 0
    names = {"rates", "comparisons", "distributions", "timeline", "roc"}
    assert {p.stem for p in (tmp_path / "one").glob("*.svg")} == names
    assert {p.stem for p in (tmp_path / "one").glob("*.png")} == names
    for name in names:
        one, two = (tmp_path / f / f"{name}.svg" for f in ("one", "two"))
        assert one.read_bytes() == two.read_bytes(), name
        png = (tmp_path / "one" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG")


def test_long_answers_and_logprobs_are_cut_and_the_page_says_so(tmp_path, run_cli):
    from harness.report import ReportRequest, build_report
    from harness.report.read import Limits

    project = write_project(tmp_path)
    limits = Limits(answer_chars=20, logprob_answers=3, logprob_positions=1)
    built = build_report(
        ReportRequest(
            project.output / "ledger.jsonl",
            project.output / "scores.jsonl",
            tmp_path / "small.html",
            limits=limits,
            resamples=0,
        )
    )
    _, data = page_data(built.path)
    assert max(len(text) for text in data["rows"]["text"]) == 20
    assert len(data["logprobs"]) == 3 and all(len(lp["t"]) == 1 for lp in data["logprobs"])
    kept = [
        data["prompts"]["id"][data["rows"]["prompt"][i]]
        for i, at in enumerate(data["rows"]["logprobs"])
        if at >= 0
    ]
    assert len(kept) == 3
    notes = " | ".join(built.notes)
    assert "cut to 20 characters" in notes
    assert "token logprobs kept for 3 of the 12 answers" in notes
    assert "first 1 token positions only" in notes


def test_a_shard_tree_reads_as_its_merged_ledger(project, run_cli, tmp_path):
    shards = tmp_path / "sharded"
    lines = (project.output / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    run, records = lines[0], lines[1:]
    for k in range(2):
        folder = shards / "shards" / f"{k}-of-2"
        folder.mkdir(parents=True)
        (folder / "ledger.jsonl").write_bytes(run + b"".join(records[k::2]))
    shutil.copy(project.output / "scores.jsonl", shards / "scores.jsonl")
    assert run_cli("report", shards)[0] == 0
    assert run_cli("report", project.output)[0] == 0
    _, sharded = page_data(shards / "report.html")
    _, whole = page_data(project.output / "report.html")

    def rows(data):
        r = data["rows"]
        return sorted(
            (data["variants"][v], data["prompts"]["id"][p], ok, text)
            for v, p, ok, text in zip(r["variant"], r["prompt"], r["ok"], r["text"], strict=True)
        )

    assert rows(sharded) == rows(whole)


def test_the_roc_curve_encloses_the_auroc_of_harness_stats(project):
    stats = compute_stats(project.output / "ledger.jsonl", project.output / "scores.jsonl")
    from harness.analysis.view import open_view
    from harness.analysis.view_columns import FIELDS, view_columns

    ledger = project.output / "ledger.jsonl"
    with open_view(ledger, ledger.parent / "x", fields=FIELDS) as view:
        columns = view_columns(view)
    gamma = columns.variant == columns.variants.index(VARIANTS[2])
    for measure in MEASURES:
        found = [s for s in stats.separations if s.measure == measure and s.variant == VARIANTS[2]]
        unsure = UNSURE_SIGN[measure] * columns.unsure[measure][gamma]
        curve = roc_points(unsure, columns.probe[gamma])
        assert curve is not None and len(found) == 1
        assert np.trapezoid(curve[1], curve[0]) == pytest.approx(found[0].auroc)


def test_a_rate_a_rounding_error_outside_its_interval_is_drawn(tmp_path):
    # The Wilson interval of 12 of 12 ends at 0.9999999999999999 by statsmodels' arithmetic.
    whole = Rate("claims", "a@t0", "cve", "exists", 12, 12, 1.0, 0.757, 1.0 - 2**-53)
    none = Rate("claims", "a@t0", None, "exists", 12, 0, 0.0, 2**-60, 0.243)
    stats = Stats("ledger.jsonl", None, 12, rates=[whole, none])
    figure = rates_figure(stats, "claims", None, ["a@t0"])
    assert isinstance(figure, Made)  # drawn (a str says why not)


@pytest.mark.parametrize("started", [True, False])
def test_open_hands_the_file_to_the_default_browser_or_says_it_could_not(
    project, run_cli, monkeypatch, started
):
    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda uri: opened.append(uri) or started)
    code, out, _ = run_cli("report", project.output, "--open")
    uri = (project.output / "report.html").resolve().as_uri()
    assert (code, opened) == (0, [uri])
    said = "Opened" if started else "No browser could be started here; open"
    assert f"{said} {uri}" in " ".join(out.split())


def test_the_page_read_by_several_threads_is_the_page_read_by_one(project, run_cli, tmp_path):
    pages = {}
    for threads in ("1", "3"):
        target = tmp_path / f"report-{threads}.html"
        args = ("report", project.output, "--threads", threads, "--out", target)
        assert run_cli(*args)[0] == 0
        pages[threads] = target.read_bytes()
    assert pages["3"] == pages["1"]


def test_the_token_logprobs_kept_are_the_same_with_several_threads_when_some_are_left_out(
    tmp_path,
):
    records = [
        answer(v, f"p{n:02d}", token_logprobs=logprobs([-0.1 * n, -2.0], [-0.5, -1.0]))
        for n in range(12)
        for v in ("a@t0", "b@t0", "c@t0")
    ]
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    limits = Limits(logprob_answers=4, logprob_positions=1)
    made = []
    for threads in (1, 3):
        with open_view(ledger, tmp_path / "scores.jsonl", threads=threads, fields=FIELDS) as view:
            reading = report_reading(view, limits)
        texts = [None] * len(reading.rows.prompts)
        made.append(payload(reading.columns, reading.rows, texts, reading.logprobs))
        assert len(reading.logprobs.answers) == 4 < reading.logprobs.total == 36
        assert reading.logprobs.cut == 4
    assert made[0] == made[1]
    kept = {made[0]["prompts"]["id"][made[0]["rows"]["prompt"][row]] for row in range(36)
            if made[0]["rows"]["logprobs"][row] >= 0}  # fmt: skip
    ranked = sorted({r["prompt_id"] for r in records}, key=lambda p: zlib.crc32(p.encode()))
    assert ranked[0] in kept  # every variant's answer to the prompt first in the hash


@pytest.mark.parametrize("threads", ["1", "3"])
def test_result_lines_with_unreadable_timestamps_are_left_out_of_the_timeline_and_noted(
    project, run_cli, threads
):
    records = [dict(r) for r in project.records]
    records[len(records) // 2]["timestamp"] = "not-a-date"
    del records[len(records) // 3]["timestamp"]
    ledger = project.output / "ledger.jsonl"
    run_line = ledger.read_bytes().splitlines(keepends=True)[0]
    write_ledger(ledger.with_name("records.jsonl"), records)
    ledger.write_bytes(run_line + ledger.with_name("records.jsonl").read_bytes())
    ledger.with_name("records.jsonl").unlink()
    code, out, err = run_cli("report", project.output, "--threads", threads)
    assert code == 0, err
    assert "timeline: 2 result line(s) left out: no readable timestamp" in out
    meta, data = page_data(project.output / "report.html")
    assert "timeline: 2 result line(s) left out: no readable timestamp" in meta["notes"]
    assert len(data["rows"]["variant"]) == len(project.latest())  # every record still shown
    stamps = [r.get("timestamp") for r in records]
    assert meta["runs"][0]["ended"] == max(s for s in stamps if s and s[0].isdigit())
    assert 'data-figure="timeline"' in (project.output / "report.html").read_text()


def test_the_figures_show_the_first_scorer_that_gives_the_label_asked_for(project, run_cli):
    code, out, _ = run_cli("report", project.output, "--label", "no_refusal")
    assert code == 0
    meta, _ = page_data(project.output / "report.html")
    assert meta["scorer"] == "refusal"  # "claims", the first scorer, gives no `no_refusal`
    assert "no rates for" not in out
    html = (project.output / "report.html").read_text()
    assert "refusal: no_refusal" in html  # the rates panel's title


def test_the_closing_line_names_the_page_and_no_command_that_would_remake_it(project, run_cli):
    target = project.output / "only-alpha.html"
    code, out, _ = run_cli("report", project.output, "--variant", VARIANTS[0], "--out", target)
    assert code == 0
    said = " ".join(out.split())
    assert f"Open it in a browser: {target.resolve().as_uri()}" in said
    assert "--open opens it" in said
    assert "-m harness report" not in said  # run as printed, it would drop --variant


def test_figure_files_are_written_only_once_the_page_is(project, run_cli, tmp_path):
    place = tmp_path / "place"  # the project lies in tmp_path
    place.mkdir()
    figures = place / "figures"
    blocked = place / "a-file"
    blocked.write_text("not a folder")
    code, _, err = run_cli(
        "report", project.output, "--figures", figures, "--out", blocked / "r.html"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in place.iterdir()) == ["a-file"]  # no folder, no staging
    figures.mkdir()
    (figures / "rates.svg").write_text("earlier")
    code, _, _ = run_cli("report", project.output, "--figures", figures, "--out", blocked / "r")
    assert code == 2 and [p.name for p in figures.iterdir()] == ["rates.svg"]
    assert (figures / "rates.svg").read_text() == "earlier"
    assert sorted(p.name for p in place.iterdir()) == ["a-file", "figures"]
    code, _, _ = run_cli("report", project.output, "--figures", figures / "deeper" / "still")
    assert code == 0
    assert len(list((figures / "deeper" / "still").glob("*.png"))) == 5
    assert sorted(p.name for p in place.iterdir()) == ["a-file", "figures"]


def test_figures_asked_for_in_a_file_are_refused_before_anything_is_written(
    project, run_cli, tmp_path
):
    code, _, err = run_cli("report", project.output, "--figures", project.output / "ledger.jsonl")
    assert code == 2 and "is not a folder" in err
    assert not (project.output / "report.html").exists()


@pytest.mark.parametrize("lost", ["run line", "prompts file"])
def test_prompt_texts_not_at_hand_are_noted_with_one_hint(project, run_cli, lost):
    if lost == "run line":
        ledger = project.output / "ledger.jsonl"
        ledger.write_bytes(b"".join(ledger.read_bytes().splitlines(keepends=True)[1:]))
    else:
        (project.output.parent / "prompts.json").unlink()
    code, out, _ = run_cli("report", project.output)
    assert code == 0
    (note,) = [line for line in out.splitlines() if "prompt texts not shown" in line]
    assert note.count("--prompts") == 1, note


def test_a_report_over_its_own_inputs_is_refused(project, run_cli):
    for name, kind in (("ledger.jsonl", "a ledger"), ("scores.jsonl", "a scores file")):
        target = project.output / name
        before = target.read_bytes()
        code, _, err = run_cli("report", project.output, "--out", target, "--force")
        assert (code, err) == (
            2,
            f"error: {target}: is {kind}, which report --out never replaces; name another file\n",
        )
        assert target.read_bytes() == before


def test_damaged_ledger_lines_are_counted_on_the_page(project, run_cli):
    ledger = project.output / "ledger.jsonl"
    with ledger.open("ab") as file:
        file.write(b'not json\n{"key": null}\n')
    code, out, _ = run_cli("report", project.output, "--threads", "2")
    assert code == 0
    assert f"{ledger}: skipped 2 unreadable line(s)" in " ".join(out.split())
    meta, _ = page_data(project.output / "report.html")
    assert any("skipped 2 unreadable line(s)" in note for note in meta["notes"])


def test_no_scores_from_a_config_with_scorers_says_only_to_score(project, run_cli):
    (project.output / "scores.jsonl").unlink()
    ledger = project.output / "ledger.jsonl"
    lines = ledger.read_text().splitlines()
    run = json.loads(lines[0])
    run["config"]["scorers"] = [{"name": "existence", "type": "rules"}]
    write_ledger(ledger, [run, *map(json.loads, lines[1:])])
    code, out, _ = run_cli("report", project.output)
    assert code == 0
    expected = command_line("score", "/somewhere/report.toml", "--output", str(project.output))
    assert f"No scores yet: {expected}, then make the report again" in out
    assert page_data(project.output / "report.html")[0]["needs_scorers"] is None
