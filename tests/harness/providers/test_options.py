"""Every provider's declared options: each number has bounds, so a typo fails at load time."""

from __future__ import annotations

import dataclasses

import pytest

from harness.providers import REGISTRY
from harness.providers.options import OPTIONS, LocalOptions
from tests.bounds import unbounded_numbers


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_numeric_option_has_a_min_and_a_max(name):
    assert unbounded_numbers(OPTIONS[name]) == []


def test_every_registered_provider_declares_its_options():
    assert sorted(OPTIONS) == sorted(REGISTRY)


def test_the_local_providers_declare_the_options_they_share_once():
    """vllm's and transformers' options share one declaration (`LocalOptions`) of each option
    they both have, so a description or a bound cannot drift apart between them."""
    vllm, transformers = (
        {f.name: f for f in dataclasses.fields(OPTIONS[name])} for name in ("vllm", "transformers")
    )
    shared = vllm.keys() & transformers.keys()
    assert shared == {f.name for f in dataclasses.fields(LocalOptions)}
    assert all(vllm[name] is transformers[name] for name in shared)
