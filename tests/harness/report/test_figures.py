"""The report's figures at scale and with hostile names: bounded in size and readable for many
variants and categories and for long names (what they leave out said in notes), no secret in
their SVG or PNG, no warning about glyphs the font lacks."""

from __future__ import annotations

import re
import warnings

import pytest

from harness.report import ReportRequest, build_report
from harness.report.figure_text import NAME_CHARS, shown, shown_names
from harness.scrub import REDACTED, SECRETS
from tests.harness.analysis.ledgers import answer, score, write_ledger, write_scores

LONG = "v" * 600 + "@t0-aaaaaa"
LABELS = ("denies", "exists", "unsure")
SIDES = ("width", "height")


def write_run(root, variants, categories, labels=LABELS):
    """A ledger of one answer per variant and category, each scored by `claims`."""
    records, scores = [], []
    for v, variant in enumerate(variants):
        for c, category in enumerate(categories):
            stamp = f"2026-11-24T00:{c % 60:02d}:{v % 60:02d}.000Z"
            record = answer(variant, f"p{c:03d}", category=category, timestamp=stamp)
            records.append(record)
            scores.append(score(record, "claims", labels[(v + c) % len(labels)]))
    write_ledger(root / "ledger.jsonl", records)
    write_scores(root / "scores.jsonl", scores)


def report(root, **options):
    request = ReportRequest(
        root / "ledger.jsonl", root / "scores.jsonl", root / "report.html", resamples=0, **options
    )
    return build_report(request)


def figure_svgs(path):
    html = path.read_text()
    return dict(
        re.findall(r'<figure class="figure" data-figure="(\w+)">(<svg.*?</svg>)', html, re.S)
    )


def texts(svg):
    return [t for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg) if t.strip()]


def inches(svg):
    width, height = (float(re.search(rf'{s}="([\d.]+)pt"', svg).group(1)) / 72 for s in SIDES)
    return width, height


def test_figures_of_many_variants_categories_and_a_long_name_stay_small_and_readable(tmp_path):
    variants = [LONG, *(f"model-{n:02d}@t0-{n:06x}" for n in range(1, 24))]
    categories = [f"category-{n:03d}" for n in range(120)]
    write_run(tmp_path, variants, categories)
    built = report(tmp_path)
    svgs = figure_svgs(built.path)
    assert set(svgs) == {"rates", "comparisons", "distributions", "timeline"}
    for name, svg in svgs.items():
        assert len(svg) < 300_000, (name, len(svg))  # the rates figure was 5.4 MB
        width, height = inches(svg)
        assert width <= 7.01 and height <= 9.01, (name, width, height)
        assert LONG not in svg
        names = [t for t in texts(svg) if "@t0" in t or "category-" in t]
        assert max(map(len, names), default=0) <= NAME_CHARS + len("claims: "), name
    assert shown(LONG) in texts(svgs["rates"])
    ticks = [t for t in texts(svgs["rates"]) if t.startswith("category-")]
    assert ticks == categories[:4]  # as many as leave room for 24 bars each, and (all)
    notes = " | ".join(built.notes)
    assert "116 of 120 categories left out of the figure" in notes
    assert not re.search(r"[+-]\d\.\d\d", " ".join(texts(svgs["comparisons"])))  # no h in cells
    html = built.path.read_text()
    assert LONG in html  # the tables have the name whole


def test_a_few_variants_get_every_category_and_cohens_h_written_in_each_cell(tmp_path):
    categories = [f"c{n}" for n in range(10)]
    write_run(tmp_path, ["a@t0", "b@t0", "c@t0"], categories)
    built = report(tmp_path)
    svgs = figure_svgs(built.path)
    assert [t for t in texts(svgs["rates"]) if re.fullmatch(r"c\d", t)] == categories
    assert len(re.findall(r"[+-]\d\.\d\d", " ".join(texts(svgs["comparisons"])))) == 6
    assert not any("left out" in note for note in built.notes)


def test_the_rates_figure_draws_the_labels_given_most_and_says_how_many_it_left_out(tmp_path):
    labels = [f"label-{n}" for n in range(9)]
    categories = [f"c{n:02d}" for n in range(30)]
    write_run(tmp_path, ["a@t0", "b@t0"], categories, [*labels, *labels[:6]])
    built = report(tmp_path)
    titles = [t for t in texts(figure_svgs(built.path)["rates"]) if t.startswith("claims: ")]
    assert titles == [f"claims: {label}" for label in labels[:6]]
    assert any("the 6 labels given most of claims's 9 drawn" in note for note in built.notes)


def test_names_that_shorten_alike_stay_apart():
    names = ["x" * 50 + "-one@t0", "x" * 50 + "-one@t0 ", "short"]
    drawn = shown_names(names)
    assert len(set(drawn.values())) == 3 and drawn["short"] == "short"
    assert all(len(text) <= NAME_CHARS + 3 for text in drawn.values())


@pytest.fixture
def secret(monkeypatch):
    """A key the process does not know yet (a ledger written now keeps it)."""
    for slot, empty in (("_known", set()), ("_text", []), ("_bytes", [])):
        monkeypatch.setattr(SECRETS, slot, empty)  # learned in the test, forgotten after it
    return "sk-figure-secret-0123456789"


def test_a_secret_in_a_name_reaches_no_figure_svg_or_png(tmp_path, secret):
    named, literal = tmp_path / "named", tmp_path / "literal"
    for root, hidden in ((named, secret), (literal, REDACTED)):
        write_run(root, [f"a-{hidden}@t0", "b@t0"], [f"cat-{hidden}", "plain"])
    assert secret in (named / "ledger.jsonl").read_text()
    SECRETS.add(secret)  # as `report` learns it from the run line's config
    for root in (named, literal):
        report(root, figures=root / "figures")
    html = (named / "report.html").read_text()
    assert secret not in html
    for name in ("rates", "comparisons", "distributions", "timeline"):
        svg = (named / "figures" / f"{name}.svg").read_text()
        assert secret not in svg and secret not in figure_svgs(named / "report.html")[name]
        png = (named / "figures" / f"{name}.png").read_bytes()
        assert png == (literal / "figures" / f"{name}.png").read_bytes(), name  # drawn scrubbed
    assert REDACTED in (named / "figures" / "rates.svg").read_text()


def test_a_secret_cut_by_shortening_is_scrubbed_first(secret):
    SECRETS.add(secret)
    assert shown("p" * 40 + secret + "@t0") == shown("p" * 40 + REDACTED + "@t0")


def test_glyphs_the_font_lacks_draw_without_warnings(tmp_path):
    write_run(tmp_path, ["模型-一@t0", "モデル@t0"], ["カテゴリ", "plain"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report(tmp_path, figures=tmp_path / "figures")
    assert not [w for w in caught if "missing from font" in str(w.message)]
    assert len(list((tmp_path / "figures").glob("*.png"))) == 4


def _probe_run(root, variants=("a@t0", "b@t0", "c@t0")):
    """Three variants over 12 prompts (every third a synthetic probe), scored by `claims`,
    whose "exists" label says an item exists and "denies" that it does not."""
    records, scores = [], []
    for v, variant in enumerate(variants):
        for i in range(12):
            record = answer(variant, f"p{i:02d}", probe=i % 3 == 0, category="ab"[i % 2])
            records.append(record)
            scores.append(score(record, "claims", LABELS[(v + i) % len(LABELS)]))
    write_ledger(root / "ledger.jsonl", records)
    write_scores(root / "scores.jsonl", scores)
    line = {"key": "claims", "type": "scorer", "scorer": "claims", "definition": "d0d0d0d0d0d0"}
    write_ledger(root / "scorers.jsonl", [{**line, "claims": "exists", "denies": "denies"}])


def test_a_hallucination_view_draws_its_figure_and_a_heat_map_per_measure(tmp_path):
    _probe_run(tmp_path)
    built = report(tmp_path)
    svgs = figure_svgs(built.path)
    assert list(svgs)[:3] == ["hallucination", "rates", "comparisons"]
    words = " ".join(texts(svgs["hallucination"]))
    assert "exists on synthetic probes" in words and "denies on real items" in words
    heat = " ".join(texts(svgs["comparisons"]))
    assert "claims: hallucination" in heat and "claims: false denial" in heat
    assert not any(note.startswith("hallucination:") for note in built.notes)


def test_without_a_view_there_is_no_hallucination_figure_and_no_note_of_it(tmp_path):
    write_run(tmp_path, ["a@t0", "b@t0"], ["x", "y"])
    built = report(tmp_path)
    assert "hallucination" not in figure_svgs(built.path)
    assert not any("hallucination" in n for n in built.notes)


def test_report_by_a_field_splits_the_rates_and_draws_a_heat_map_per_split(tmp_path):
    _probe_run(tmp_path)
    built = report(tmp_path, by=("is_synthetic_probe",))
    svgs = figure_svgs(built.path)
    assert "is_synthetic_probe" in texts(svgs["rates"])
    assert {"false", "true", "(all)"} <= set(texts(svgs["rates"]))
    heat = " ".join(texts(svgs["comparisons"]))
    assert "is_synthetic_probe = false" in heat and "is_synthetic_probe = true" in heat
    page = built.path.read_text()
    assert '"by":["is_synthetic_probe"]' in page


def test_figures_written_again_take_away_an_earlier_reports_figure_not_drawn_now(tmp_path):
    _probe_run(tmp_path)
    folder = tmp_path / "figures"
    report(tmp_path, figures=folder)
    assert (folder / "hallucination.svg").is_file() and (folder / "hallucination.png").is_file()
    (folder / "notes.svg").write_text("<svg>mine</svg>")
    (tmp_path / "scorers.jsonl").unlink()  # no view now
    report(tmp_path, figures=folder)
    assert (
        not (folder / "hallucination.svg").exists() and not (folder / "hallucination.png").exists()
    )
    assert (folder / "rates.svg").is_file() and (
        folder / "notes.svg"
    ).read_text() == "<svg>mine</svg>"
