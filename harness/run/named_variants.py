"""The names `--variant` picks variants by (`rerun`, `report`): a variant's id, its model's name
(every variant of the model) or `name+adapter` (every variant of that adapter)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from harness.errors import InputError, listed


def variant_names(variant: str) -> set[str]:
    """The names that pick the variant `variant` (an id such as `sim-local@t0.7-43794d`)."""
    label = variant.split("@")[0]  # `name`, or `name+adapter`
    return {variant, label, label.partition("+")[0]}


def variants_named(given: Sequence[str], variants: Iterable[str], where: str) -> list[str]:
    """The `variants` (ids, in their order) that any of the names `given` picks; InputError
    naming those that pick none, with every name known (`where`: what holds the variants)."""
    present = list(variants)
    known = {name for variant in present for name in variant_names(variant)}
    unknown = [name for name in given if name not in known]
    if unknown:
        raise InputError(
            f"--variant: no variant {listed(unknown)} in {where} (known: {listed(sorted(known))})"
        )
    return [v for v in present if not variant_names(v).isdisjoint(given)]
