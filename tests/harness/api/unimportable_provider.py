"""A provider module that fails the test run if anything imports it: it stands for a provider
whose SDK takes seconds to import (vLLM), to show which checks need no import."""

from __future__ import annotations

from harness.api.provider import Provider

raise AssertionError("a provider's module was imported before its config was found right")


class Unimportable(Provider):
    """Holds the device, as the local engines do (read from this source, never imported)."""

    holds_device = True
