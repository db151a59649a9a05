"""Every provider's declared options: each number has bounds, so a typo fails at load time."""

from __future__ import annotations

import pytest

from harness.providers import REGISTRY, provider_class
from harness.providers.options import OPTIONS
from tests.bounds import unbounded_numbers


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_numeric_option_has_a_min_and_a_max(name):
    assert unbounded_numbers(provider_class(name).Options) == []


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_providers_options_are_the_declared_ones(name):
    assert provider_class(name).Options is OPTIONS[name]
