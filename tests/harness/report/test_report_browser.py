"""The report in headless Chromium, loaded from disk with the network blocked: it loads without
errors, draws every figure, its filters and search show the rows Python counts from the same
ledger, a row opens every variant's answer side by side, token logprobs show their top 5 on
hover, and strings from the ledger never become HTML. Screenshots of each view go to
tests/artifacts/report/."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.harness.report.project import BREAKOUT, IMAGE, VARIANTS, write_project


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from harness.cli.main import main

    root = tmp_path_factory.mktemp("report")
    project = write_project(root)
    assert main(["report", str(project.output), "--resamples", "100"]) == 0
    return project, project.output / "report.html"


def _count(page) -> int:
    return int(page.get_attribute("#count", "data-count"))


def _option(page, select: str, text: str) -> None:
    page.select_option(select, label=text)


def test_the_page_loads_offline_without_errors_and_draws_every_figure(report, tab):
    project, path = report
    page = tab.open(path)
    assert page.text_content("#source").startswith(str(project.output / "ledger.jsonl"))
    tab.shot("overview", full_page=True)
    page.click("nav button[data-view=figures]")
    figures = page.query_selector_all("figure.figure")
    assert {f.get_attribute("data-figure") for f in figures} == {
        "rates",
        "comparisons",
        "distributions",
        "timeline",
        "roc",
    }
    for figure in figures:
        box = figure.query_selector("svg").bounding_box()
        assert box["width"] > 100 and box["height"] > 100
        drawn = figure.evaluate(
            "f => [...f.querySelectorAll('svg path')].filter(p => p.getBBox().width > 0).length"
        )
        assert drawn > 5, figure.get_attribute("data-figure")
    tab.shot("figures", full_page=True)
    page.click("nav button[data-view=statistics]")
    assert page.locator("#statistics table").count() >= 3  # rates, comparisons, AUROC
    tab.shot("statistics", full_page=True)
    assert tab.errors == [] and tab.blocked == []


def test_filters_and_search_show_the_rows_python_counts(report, tab):
    project, path = report
    page = tab.open(path)
    page.click("nav button[data-view=records]")
    latest = project.latest()
    prompts = {p["id"]: p for p in project.prompts}
    assert _count(page) == len(latest)
    assert page.locator("#rows tr").count() == min(50, len(latest))
    tab.shot("records", full_page=True)

    def check(select: str, text: str, keep) -> None:
        _option(page, select, text)
        assert _count(page) == sum(map(keep, latest)), (select, text)
        assert page.locator("#rows tr").count() == min(50, _count(page))
        _option(page, select, "any")

    for variant in VARIANTS:
        check("#f-variant", variant, lambda r, v=variant: r["variant"] == v)
    for category in ("cve", "pkg", "api"):
        check("#f-category", category, lambda r, c=category: r["prompt_category"] == c)
    check("#f-probe", "probes", lambda r: prompts[r["prompt_id"]]["is_synthetic_probe"])
    check("#f-probe", "not probes", lambda r: not prompts[r["prompt_id"]]["is_synthetic_probe"])
    check("#f-status", "failed", lambda r: r["status"] == "error")
    check("#f-status", "ok", lambda r: r["status"] == "ok")
    for kind in ("ServerError", "RateLimited"):
        check("#f-error", kind, lambda r, k=kind: (r["error"] or {}).get("type") == k)
    exists = lambda r: r["status"] == "ok" and "exists" in r["full_response"]  # noqa: E731
    check("#f-label", "claims: exists", exists)
    check(
        "#f-label",
        "refusal: (no current score)",
        lambda r: r["status"] != "ok" or r["prompt_id"] >= "p06",
    )

    page.check("#f-logprobs")
    assert _count(page) == sum(r["token_logprobs"] is not None for r in latest)
    page.uncheck("#f-logprobs")

    def search(text: str) -> int:
        page.fill("#f-search", text)
        page.wait_for_timeout(300)  # the search waits for typing to pause
        return _count(page)

    def matches(needle: str, r) -> bool:
        answer = r["full_response"] if r["status"] == "ok" else r["error"]["message"]
        haystack = f"{r['prompt_id']}\n{prompts[r['prompt_id']]['prompt']}\n{answer}"
        return needle.lower() in haystack.lower()

    for needle in ("NEEDLE", "thing number 11", "</script>", "does not exist", "p07"):
        assert search(needle) == sum(matches(needle, r) for r in latest), needle
    _option(page, "#f-variant", VARIANTS[1])
    assert search("</script>") == sum(
        matches("</script>", r) and r["variant"] == VARIANTS[1] for r in latest
    )
    assert tab.errors == [] and tab.blocked == []


def test_a_row_opens_every_variants_answer_side_by_side_as_text(report, tab):
    _, path = report
    page = tab.open(path)
    page.click("nav button[data-view=records]")
    page.fill("#f-search", "p04")
    page.wait_for_timeout(300)
    page.click("#rows tr >> nth=0")
    assert page.is_visible("#detail")
    cards = page.locator("#answers .answer-card")
    assert {cards.nth(i).get_attribute("data-variant") for i in range(cards.count())} == set(
        VARIANTS
    )
    beta = page.locator(f'#answers .answer-card[data-variant="{VARIANTS[1]}"] pre')
    assert beta.text_content() == f"{BREAKOUT}{IMAGE} Yes, it exists."
    tab.shot("side-by-side", full_page=True)
    page.click("#back")
    page.fill("#f-search", "p01")  # whose prompt holds BREAKOUT; p02's holds IMAGE
    page.wait_for_timeout(300)
    page.click("#rows tr >> nth=0")
    assert BREAKOUT in page.text_content("#detail-prompt")
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('img, main script').length") == 0
    assert tab.errors == [] and tab.blocked == []


def test_token_logprobs_show_their_top_5_on_hover(report, tab):
    project, path = report
    page = tab.open(path)
    page.click("nav button[data-view=records]")
    _option(page, "#f-variant", VARIANTS[2])
    page.fill("#f-search", "p03")
    page.wait_for_timeout(300)
    page.click("#rows tr >> nth=0")
    tokens = page.locator(f'.answer-card[data-variant="{VARIANTS[2]}"] .token')
    assert tokens.count() == 2
    record = next(
        r for r in project.latest() if r["variant"] == VARIANTS[2] and r["prompt_id"] == "p03"
    )
    for position, logprob in enumerate(record["token_logprobs"]):
        tokens.nth(position).hover()
        assert page.is_visible("#tooltip")
        tip = page.text_content("#tooltip")
        for alternative, value in logprob["top"]:
            assert f'"{alternative}"' in tip and f"{value:.3f}" in tip
        assert tip.count("%") == 6  # the chosen token's probability, then the top 5
    tab.shot("logprob-tooltip")
    assert tab.errors == [] and tab.blocked == []


def test_the_filters_list_variants_categories_labels_and_error_types_by_name(tmp_path, tab):
    from harness.cli.main import main

    project = write_project(tmp_path)
    ledger = project.output / "ledger.jsonl"
    run, *records = ledger.read_bytes().splitlines(keepends=True)
    last = [line for line in records if VARIANTS[2].encode() in line]
    ledger.write_bytes(run + b"".join(last + [r for r in records if r not in last]))
    assert main(["report", str(project.output), "--resamples", "0"]) == 0
    page = tab.open(project.output / "report.html")
    page.click("nav button[data-view=records]")

    def shown(select: str) -> list[str]:
        return page.eval_on_selector_all(f"{select} option", "os => os.map(o => o.textContent)")

    assert shown("#f-variant") == ["any", *sorted(VARIANTS)]  # the ledger has gamma first
    assert shown("#f-category") == ["any", "api", "cve", "pkg"]
    assert shown("#f-error") == ["any", "RateLimited", "ServerError"]
    labels = shown("#f-label")[1:]
    for scorer in ("claims", "refusal"):
        given = [x for x in labels if x.startswith(f"{scorer}: ") and "(no current" not in x]
        assert given == sorted(given) and given, scorer
    _option(page, "#f-variant", VARIANTS[0])
    assert _count(page) == sum(r["variant"] == VARIANTS[0] for r in project.latest())
    assert tab.errors == [] and tab.blocked == []


# The demo's config with a Python scorer of its own beside it (`claims` names its label that
# says an item exists: a second hallucination view).
_MINE = """
[[scorers]]
name = "mine"
type = "python"
function = "graders:grade"
claims = "says_yes"
"""
_GRADER = """
def grade(answer, prompt):
    yes = answer["full_response"].lower().startswith("yes")
    return {"label": "says_yes" if yes else "other", "value": float(yes)}
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo, with a Python scorer too: run, scored, its stats and Parquet export, its
    report."""
    import json
    import shutil

    import pandas as pd

    from tests.conftest import REPO

    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "configs" / "prompts", root / "prompts")
    config = root / "demo.toml"
    config.write_text((REPO / "configs" / "demo.toml").read_text() + _MINE)
    (root / "graders.py").write_text(_GRADER)
    output = root / "results"
    # The run ends with a few jobs failed for good (the demo's injected 400s); rerun brings them in.
    steps = (
        (["run", str(config), "--output", str(output)], 1),
        (["rerun", str(config), "--output", str(output)], 0),
        (["score", str(config), "--output", str(output)], 0),
        (["stats", str(output), "--json", str(root / "s.json"), "--resamples", "0"], 0),
        (["export", str(output), "--format", "parquet", "--to", str(root / "a.parquet")], 0),
        (["report", str(output), "--resamples", "0"], 0),
    )
    for argv, code in steps:  # each a process of its own: Playwright's loop may be running here
        done = subprocess.run([sys.executable, "-m", "harness", *argv], capture_output=True)
        assert done.returncode == code, done.stderr
    stats = json.loads((root / "s.json").read_text())
    return stats, pd.read_parquet(root / "a.parquet"), output / "report.html"


def test_the_overview_leads_with_each_hallucination_table_as_stats_gives_it(demo, tab):
    stats, answers, path = demo
    page = tab.open(path)
    headings = page.locator("#headline h2").all_text_contents()
    assert headings == [
        "existence: hallucination view, 95% Wilson interval",
        "mine: hallucination view, 95% Wilson interval",
    ]
    first = page.locator("#headline table").first
    rows = first.locator("tbody tr").all()
    shown = {
        r.locator("td").nth(0).text_content(): r.locator("td").nth(1).text_content() for r in rows
    }
    for rate in stats["hallucination"]:
        if rate["scorer"] == "existence" and rate["measure"] == "hallucination":
            expected = (
                f"{100 * rate['rate']:.1f}% [{100 * rate['low']:.1f}%, {100 * rate['high']:.1f}%] "
                f"{rate['count']}/{rate['n']}"
            )
            assert shown.pop(rate["variant"]) == expected
    assert shown == {}
    # the Python scorer's view counts its own label on the probes, as the export has it
    probes = answers[answers["is_synthetic_probe"] & answers["score.mine"].notna()]
    for rate in stats["hallucination"]:
        if rate["scorer"] == "mine":
            mine = probes[probes["variant"] == rate["variant"]]
            assert (rate["count"], rate["n"]) == (
                (mine["score.mine"] == "says_yes").sum(),
                len(mine),
            )
    assert page.locator("#overview").text_content().index("hallucination") < page.locator(
        "#overview"
    ).text_content().index("Variants")
    tab.shot("demo-overview", full_page=True)
    page.click("nav button[data-view=statistics]")
    text = page.locator("#statistics").text_content()
    # a two-label scorer's table is of its claims label
    for heading in ("truth = correct: rate per category", "mine = says_yes: rate per category"):
        assert heading in text
    assert "Significant differences" in text
    assert tab.errors == [] and tab.blocked == []


def test_the_record_view_shows_the_prompts_fields_beside_the_answers(demo, tab):
    _, answers, path = demo
    page = tab.open(path)
    page.click("nav button[data-view=records]")
    page.click("#rows tr >> nth=0")
    fields = page.locator("#detail-fields dt").all_text_contents()
    assert "ground_truth" in fields
    prompt = page.text_content("#detail-title")
    mine = answers[answers["prompt_id"] == prompt].iloc[0]
    values = dict(zip(fields, page.locator("#detail-fields dd").all_text_contents(), strict=True))
    given = mine.filter(like="metadata.").dropna()  # a field this prompt lacks: not shown
    assert values == {name.removeprefix("metadata."): value for name, value in given.items()}
    assert tab.errors == [] and tab.blocked == []
