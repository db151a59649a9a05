"""Options that document themselves: every declared key has a description, `harness options`
prints them, and docs/config-reference.md is generated from the same declarations."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from harness.cli.options import markdown
from harness.config import models, prices, run_config, scorers
from harness.config.reference import SECTIONS
from harness.fields import number_text, table_values
from harness.prompts import sources
from harness.providers import REGISTRY
from harness.providers.options import OPTIONS
from tests.conftest import REPO

DECLARED = [section.table for section in SECTIONS] + list(OPTIONS.values())
# Dataclasses of the config modules that are no table of a config file: what tables become.
NOT_TABLES = {
    run_config.Variant, run_config.RunConfig, run_config.ConfigDraft, run_config._Parts,
    scorers.RuleScorer, scorers.RefusalScorer, scorers.JudgeScorer, scorers.TargetScorer,
    scorers.PythonScorer,
    scorers._Kind, prices.Rates,
    prices.LongContext,
    prices.Price, prices.Billable, prices._RatesTable, sources.FieldMap, sources.PromptSource,
    sources.DataFile,
}  # fmt: skip


@pytest.mark.parametrize("table", DECLARED, ids=lambda table: table.__name__)
def test_every_declared_key_has_a_one_line_description(table):
    missing = [
        f.name
        for f in dataclasses.fields(table)
        if not f.metadata.get("description") or "\n" in f.metadata["description"]
    ]
    assert missing == []


def test_every_table_of_the_config_modules_is_in_the_reference():
    modules = (run_config, models, scorers, prices, sources)
    found = {
        value
        for module in modules
        for value in vars(module).values()
        if dataclasses.is_dataclass(value) and value.__module__ == module.__name__
    }
    assert found - NOT_TABLES == {section.table for section in SECTIONS}


def test_every_registered_provider_has_declared_options():
    assert set(OPTIONS) == set(REGISTRY)


def test_the_config_reference_is_generated_from_the_declarations():
    written = (REPO / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert written == markdown(), "run `make docs` to regenerate docs/config-reference.md"


def test_options_of_a_provider_print_each_with_its_facts(run_cli):
    code, out, err = run_cli("options", "simulated")
    assert code == 0 and err == ""
    assert (
        "  rate_limit_rate (number, default 0, 0 to 1): the chance that an attempt gets a 429 "
        "(the four rates add up to <= 1)" in out.splitlines()
    )
    assert (
        "  output_tokens (integer, default 48, 1 to 10_000_000, answer-defining): tokens in "
        "each answer" in out.splitlines()
    )
    assert out.splitlines()[-1].startswith("next: ")


def test_options_without_a_provider_list_the_config_and_the_providers(run_cli):
    code, out, _ = run_cli("options")
    assert code == 0
    assert "[retry]: how a lane retries one job" in out
    assert (
        "  max_attempts (integer, default 5, 1 to 100): attempts per job, the first included" in out
    )
    assert f"providers: {', '.join(sorted(REGISTRY))}" in out


def test_an_unknown_provider_is_one_line_naming_the_known_ones(run_cli):
    code, out, err = run_cli("options", "nonesuch")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f'error: unknown provider "nonesuch" (known: {", ".join(sorted(REGISTRY))})'
    ]


def test_a_provider_with_markdown_is_refused_in_one_line(run_cli):
    code, out, err = run_cli("options", "simulated", "--markdown")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: --markdown writes the whole reference: give no PROVIDER with it"
    ]


def test_the_reference_states_the_limits_the_loader_enforces(run_cli):
    code, out, _ = run_cli("options")
    assert code == 0
    lines = out.splitlines()
    expected = [
        "  name (string, required, answer-defining): the label of the model's variant ids, in "
        "ledgers and reports; no '|', '@' or '+'",
        "  options (table, default {}): the provider's own options: [models.options]; those "
        "marked answer-defining in `harness options PROVIDER` are part of the variant id",
        "  requests_per_minute (number, or unset, default unset, 0.001 to 10_000_000): the "
        "model's request rate limit (unset: unlimited)",
    ]
    assert [line for line in expected if line not in lines] == []
    for limit in ("none twice", "within the provider's batch limit",
                      'providers with a batch API (mode = "batch"): anthropic, gemini',
                  "; not empty", "(not with text)", "a rule needs regex or keywords",
                  "(empty: the built-in names)"):  # fmt: skip
        assert limit in out, limit
    assert "or none" not in out


@pytest.mark.slow
def test_options_import_no_provider_sdk():
    code = (
        "import sys; from harness.cli.main import main; main(['options', 'vllm']);"
        "main(['options', 'anthropic']); heavy = {'vllm', 'torch', 'transformers', 'anthropic',"
        " 'google.genai', 'aiohttp'} & set(sys.modules); assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()


def test_a_list_of_choices_reads_as_one_and_a_pattern_as_a_bound(run_cli):
    code, out, _ = run_cli("options", "simulated")
    assert code == 0
    assert '  script (list, each "ok" | "429" | "500" | "503" | "timeout" | "400" | ' in out
    code, out, _ = run_cli("options", "transformers")
    assert code == 0 and 'default "auto", matches auto|cpu|mps|cuda(:[0-9]+)?' in out


@pytest.mark.parametrize("section", SECTIONS, ids=[s.title for s in SECTIONS])
def test_an_error_writes_a_bound_as_the_reference_does(section):
    """`must be <= 1_000_000_000` in an error, as `1_000_000_000` in the reference."""
    for field in dataclasses.fields(section.table):
        if "max" not in field.metadata:
            continue
        bound = field.metadata["max"]
        shown = number_text(bound)
        assert f" to {shown}" in markdown() or f"<= {shown}" in markdown()
        value = bound * 2 + 1
        listed = isinstance(field.default, tuple)
        errors = table_values(section.table, {field.name: [value] if listed else value}, "")[1]
        told = [e.message for e in errors if e.path.startswith(field.name)]
        assert told and told[0].startswith(f"must be <= {shown}, got"), told
