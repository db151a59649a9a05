"""The config's tables in the order a config file reads, for `python -m harness options` and
docs/config-reference.md: each a title, what it is, and the dataclass that declares its keys
(types, defaults, bounds, descriptions: see `harness.fields.described`)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.config.models import BatchPolicy, Defaults, ModelConfig
from harness.config.prices import LongContextPriceKeys, PriceKeys, ShippedPriceKeys
from harness.config.run_config import ConfigKeys, Preflight, RetryPolicy
from harness.config.scorers import (
    JudgeScorerKeys,
    PythonScorerKeys,
    RefusalScorerKeys,
    Rule,
    RulesScorerKeys,
    TargetScorerKeys,
)
from harness.prompts.sources import PromptTable


@dataclass(frozen=True)
class Section:
    """One table of the config: how it is written, what it holds, and its declared keys."""

    title: str
    about: str
    table: type


SECTIONS = (
    Section("top level", "the keys outside any table", ConfigKeys),
    Section("[prompts]", 'the prompt set as a table (`prompts = "file"` is its path)', PromptTable),
    Section("[defaults]", "values every model takes unless it sets its own", Defaults),
    Section("[retry]", "how a lane retries one job", RetryPolicy),
    Section("[preflight]", "one minimal request to every API model before a run", Preflight),
    Section(
        "[[models]]",
        "one model: a provider, its limits, the temperatures to sweep ([defaults] keys too)",
        ModelConfig,
    ),
    Section("[models.batch]", "how a model in batch mode sizes and polls batches", BatchPolicy),
    Section("[models.price]", "the model's price, replacing the shipped one", PriceKeys),
    Section(
        "[models.price.long_context]",
        "rates for every token of a request whose prompt is longer than `above`",
        LongContextPriceKeys,
    ),
    Section(
        '[[scorers]] type = "rules"', "the first rule that matches gives its label", RulesScorerKeys
    ),
    Section("[[scorers.rules]]", "one rule of a rules scorer", Rule),
    Section(
        '[[scorers]] type = "refusal"',
        "the shipped refusal patterns and any extra ones",
        RefusalScorerKeys,
    ),
    Section('[[scorers]] type = "judge"', "a model's verdict on each answer", JudgeScorerKeys),
    Section(
        '[[scorers]] type = "target"',
        "each answer, or another scorer's label, against its prompt's target",
        TargetScorerKeys,
    ),
    Section(
        '[[scorers]] type = "python"', "a function of your own labels each answer", PythonScorerKeys
    ),
    Section(
        "prices.toml", "an entry of the shipped price table, under its provider", ShippedPriceKeys
    ),
)
