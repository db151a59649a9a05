"""Prices, and what a request costs.

Prices ship with the package in `harness/prices.toml`, in USD per million tokens, each entry with
the public page it was taken from and the day it was read. A model's `[models.price]` table (the
same fields as an entry's `price`) replaces the shipped entry, or prices a model the file lacks. A
model priced by neither has no price: its cost is None ("unknown"), never 0.

Model ids: an entry matches its `id` and its `aliases`. An id that matches none is tried again
without Gemini's `models/` prefix and then without one dated-snapshot suffix (`-20250929`,
`-2024-08-06`, `@20250929`) or `-latest`, so `claude-sonnet-4-5-20250929` is priced as
`claude-sonnet-4-5`. A snapshot priced unlike its alias has an entry of its own.

A usage (a record's `tokens`) is priced the way its provider bills it: the provider class's
`billing` (`harness.api.provider.Billing`) says how its counts overlap. A kind of token an entry
gives no price for is charged at its input rate, never at 0. Above `long_context.above` prompt
tokens (cache reads and writes included), every token of the request is charged at the
long-context rates, as Gemini 2.5 Pro and Claude Sonnet 4's 1M-token context are billed. A local
model instead costs `cost_per_gpu_hour` for the wall time of its lane (`gpu_cost_usd`).

A model run through its provider's batch API (`mode = "batch"`) is priced at the batch rates:
`batch_discount` off input and output, and off cache reads and writes where the provider's
`billing` says its discount covers those too. A price without a `batch_discount` is charged in
full: an upper bound, never an undercount. This module names no provider: the shipped table is
keyed by provider name, and what a provider's counts mean is the provider class's to say.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from harness.api.provider import Billing
from harness.config.models import ModelConfig
from harness.fields import described, from_table, option

# The estimate of a prompt's tokens before any tokenizer has seen it: one per 4 characters, the
# usual figure for English text in current tokenizers (code and other languages run denser).
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens of each kind a provider bills apart."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    def usd(
        self, input: float = 0, output: float = 0, cache_read: float = 0, cache_write: float = 0
    ) -> float:
        """What these many tokens of each kind cost."""
        return (
            input * self.input
            + output * self.output
            + cache_read * self.cache_read
            + cache_write * self.cache_write
        ) / 1_000_000


@dataclass(frozen=True, slots=True)
class LongContext:
    """Rates for every token of a request whose prompt holds more than `above` tokens."""

    above: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price: its rates and where the figures come from (`source`: a page, or
    "config"); `unconfirmed` says why a figure could not be checked on the provider's own page
    ("" when it was). `batch_discount` is the share a provider's batch API takes off input and
    output (0.5 is half price); None where it has none, or once applied. `batch_cache_keep` is
    what an applied batch discount leaves of the cache rates where the provider's discount
    covers cache reads and writes (`Billing.batch_discounts_cache`); 1.0 when not batched."""

    rates: Rates
    source: str
    long_context: LongContext | None = None
    batch_discount: float | None = None
    batch_cache_keep: float = 1.0
    unconfirmed: str = ""

    def rates_for(self, prompt_tokens: int) -> Rates:
        """The rates of a request with this many prompt tokens."""
        if self.long_context is not None and prompt_tokens > self.long_context.above:
            return self.long_context.rates
        return self.rates


@dataclass(frozen=True, slots=True)
class Billable:
    """A usage split into what a provider bills apart: uncached input, output (thoughts
    included), cache reads and cache writes."""

    input: int
    output: int
    cache_read: int
    cache_write: int

    @property
    def prompt(self) -> int:
        """Every token of the prompt, cached or not."""
        return self.input + self.cache_read + self.cache_write


_KINDS = ("input", "output", "cache_read", "cache_write", "thoughts")


def billable(tokens: Mapping[str, Any], billing: Billing) -> Billable | None:
    """Split a record's `tokens` as its provider bills them (`billing`: the provider class's);
    None when a count is not a non-negative integer. Missing kinds count 0."""
    counts = [tokens.get(kind, 0) for kind in _KINDS]
    if not all(type(count) is int and count >= 0 for count in counts):
        return None
    given, output, cache_read, cache_write, thoughts = counts
    uncached = given - cache_read if billing.input_has_cache_read else given
    if not billing.output_has_thoughts:
        output += thoughts
    return Billable(max(uncached, 0), output, cache_read, cache_write)


def cost_usd(price: Price | None, tokens: Mapping[str, Any], billing: Billing) -> float | None:
    """The cost of one request from its usage as the ledger stores it (`{"input", "output",
    "total", "cache_read", "cache_write", "thoughts"}`), billed as its provider's `billing`
    says; None when the price is unknown or the usage unreadable."""
    if price is None:
        return None
    bill = billable(tokens, billing)
    if bill is None:
        return None
    rates = price.rates_for(bill.prompt)
    cache = price.batch_cache_keep if billing.batch_discounts_cache else 1.0
    return rates.usd(bill.input, bill.output, bill.cache_read * cache, bill.cache_write * cache)


def worst_case_usd(price: Price | None, input_tokens: int, max_tokens: int) -> float | None:
    """The most a request should cost: its (estimated) input uncached, and `max_tokens` of
    output; None when the price is unknown. For a budget's reservation before an attempt."""
    if price is None:
        return None
    return price.rates_for(input_tokens).usd(input=input_tokens, output=max_tokens)


def gpu_cost_usd(cost_per_gpu_hour: float, seconds: float) -> float:
    """What a lane costs that held its GPUs for `seconds` of wall time, at `cost_per_gpu_hour`
    (the hourly price of everything the model runs on)."""
    return cost_per_gpu_hour * seconds / 3600


def estimated_input_tokens(text: str) -> int:
    """A prompt's tokens before a tokenizer has seen it (see `CHARS_PER_TOKEN`)."""
    return len(text) // CHARS_PER_TOKEN + 1


def model_price(model: ModelConfig) -> Price | None:
    """The price of a configured model's answers: its `[models.price]`, else the shipped
    table's; at the batch rates when the model runs in batch mode."""
    price = price_for(model.provider, model.model_id, model.price)
    return batch_price(price) if model.mode == "batch" else price


def batch_price(price: Price | None) -> Price | None:
    """`price` at its provider's batch rates (see the module docstring): input and output
    discounted, and what the discount leaves of cache rates kept for providers whose discount
    covers them."""
    if price is None or not price.batch_discount:
        return price
    keep = 1 - price.batch_discount

    def scaled(rates: Rates) -> Rates:
        return Rates(rates.input * keep, rates.output * keep, rates.cache_read, rates.cache_write)

    long = price.long_context
    return dataclasses.replace(
        price,
        rates=scaled(price.rates),
        long_context=None if long is None else LongContext(long.above, scaled(long.rates)),
        batch_discount=None,  # applied
        batch_cache_keep=keep,
    )


def answer_price(model: ModelConfig) -> Price | None:
    """What a configured model's answers cost: its price; for a model priced only by
    `cost_per_gpu_hour`, tokens are free (its GPU time is charged from its lane's wall time)."""
    price = model_price(model)
    if price is None and model.cost_per_gpu_hour is not None:
        free = {"input": 0.0, "output": 0.0}
        price = parse_price(free, "cost_per_gpu_hour", "cost_per_gpu_hour")
    return price


def price_for(
    provider: str, model_id: str, override: Mapping[str, Any] | None = None
) -> Price | None:
    """The price of `model_id` at `provider`: `override` (a `[models.price]` table) when given,
    else the shipped table's entry; None when neither prices it."""
    if override:
        return parse_price(override, "price")
    shipped = _shipped()
    for candidate in _candidates(model_id):
        price = shipped.get((provider, candidate))
        if price is not None:
            return price
    return None


_RATE: dict[str, Any] = {"min": 0, "max": 1_000_000}


@dataclass(frozen=True)
class _RatesTable:
    input: float = field(metadata=described("USD per million input tokens", **_RATE))
    output: float = field(metadata=described("USD per million output tokens", **_RATE))
    cache_read: float | None = option(
        None, "USD per million tokens read from a cache (unset: the input rate)", **_RATE
    )
    cache_write: float | None = option(
        None, "USD per million tokens written to a cache (unset: the input rate)", **_RATE
    )

    def rates(self) -> Rates:
        cache_read = self.input if self.cache_read is None else self.cache_read
        cache_write = self.input if self.cache_write is None else self.cache_write
        return Rates(self.input, self.output, cache_read, cache_write)


@dataclass(frozen=True, kw_only=True)
class LongContextPriceKeys(_RatesTable):
    above: int = field(
        metadata=described("prompt tokens above which these rates apply", min=1, max=1_000_000_000)
    )


@dataclass(frozen=True)
class PriceKeys(_RatesTable):
    batch_discount: float | None = option(
        None, "the share the batch API takes off (0.5: half price)", min=0, max=1
    )
    long_context: dict[str, Any] | None = option(
        None, "rates for every token of a long request: {above, input, output, ...}"
    )


def parse_price(table: Mapping[str, Any], path: str, source: str = "config") -> Price:
    """A price from its TOML table (`input`, `output`, `cache_read`, `cache_write`,
    `batch_discount`, and `long_context = {above, input, output, ...}`); FieldError naming the
    key path when it is wrong."""
    fields = from_table(PriceKeys, table, path)
    long_context = None
    if fields.long_context is not None:
        long = from_table(LongContextPriceKeys, fields.long_context, f"{path}.long_context")
        long_context = LongContext(long.above, long.rates())
    return Price(
        rates=fields.rates(),
        source=source,
        long_context=long_context,
        batch_discount=fields.batch_discount,
    )


@dataclass(frozen=True)
class ShippedPriceKeys:
    """One model's entry in harness/prices.toml, under its provider's name."""

    id: str = field(metadata=described("the model id"))
    source: str = field(metadata=described("the public page the figures come from"))
    checked: str = field(metadata=described("the day the page was read"))
    price: dict[str, Any] = field(metadata=described("the price: the keys of [models.price]"))
    aliases: tuple[str, ...] = option((), "other ids of the same model")
    unconfirmed: str = option("", "why a figure could not be checked on the provider's page")


@functools.cache
def _shipped() -> dict[tuple[str, str], Price]:
    """The shipped table by (provider, model id or alias)."""
    text = resources.files("harness").joinpath("prices.toml").read_text(encoding="utf-8")
    table: dict[tuple[str, str], Price] = {}
    for provider, entries in tomllib.loads(text).items():
        for index, raw in enumerate(entries):
            where = f"{provider}[{index}]"
            entry = from_table(ShippedPriceKeys, raw, where)
            price = parse_price(entry.price, f"{where}.price", entry.source)
            price = dataclasses.replace(price, unconfirmed=entry.unconfirmed)
            for model_id in (entry.id, *entry.aliases):
                if (provider, model_id) in table:
                    raise ValueError(f"prices.toml: {where}: {model_id} is priced twice")
                table[provider, model_id] = price
    return table


_SNAPSHOT = re.compile(r"(?:-\d{8}|-\d{4}-\d{2}-\d{2}|@\d{8}|-latest)$")


def _candidates(model_id: str) -> Iterator[str]:
    """The ids a model id is looked up by, in order (see the module docstring)."""
    yield model_id
    bare = model_id.removeprefix("models/")
    yield bare
    yield _SNAPSHOT.sub("", bare)
