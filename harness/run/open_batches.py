"""A ledger's open provider batches seen from outside a run: `status` shows what their provider
says of each, `batches cancel` cancels them. Neither writes to the ledger: the next `run` collects
whatever a batch answered, and records the rest with the batch's reason.

Credentials: a batch's `submit` line names its model (by its config name) and the run that sent
it, whose run line names the config file it ran with. The provider is made from that config, its
key taken from the environment as `run` takes it, or from `--config CONFIG` when given (the file
moved, or another one holds the model's key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness.api.provider import BatchProvider
from harness.errors import InputError, ProviderError
from harness.ledger.index import OpenBatch, ResumeIndex
from harness.ledger.lines import Source, parse_line, source_lines
from harness.run.prepare import setup_model
from harness.run.progress import batch_line


@dataclass(frozen=True)
class Sender:
    """The run that sent a batch: its config file and its command line (after `-m harness`)."""

    config: str
    argv: tuple[str, ...]


def senders(source: Source) -> dict[str, Sender]:
    """Every run of the ledger by run id (run lines alone are parsed)."""
    found = {}
    for line in source_lines(source):
        if line.startswith(b'{"type":"run"'):
            run = parse_line(line)
            if run is None:
                continue
            config_path, argv = run.get("config_path"), run.get("argv")
            if isinstance(config_path, str):
                argv = tuple(argv) if isinstance(argv, list) else ()
                found[str(run.get("run_id"))] = Sender(config_path, argv)
    return found


async def states(
    index: ResumeIndex, runs: Mapping[str, Sender], config: str | None
) -> list[tuple[OpenBatch, str]]:
    """Each open batch and a line on it: the jobs it owes and what its provider says."""

    async def state(provider: BatchProvider, batch: OpenBatch) -> str:
        if batch.batch_id is None:
            return "creation not confirmed: the next run looks for it, or creates it"
        status = await provider.batch_status(batch.batch_id)
        return batch_line(batch.model, batch.batch_id, len(index.owed(batch)), status)

    return await _each(index, runs, config, state)


async def cancel(
    index: ResumeIndex, runs: Mapping[str, Sender], config: str | None
) -> list[tuple[OpenBatch, str]]:
    """Ask the provider to cancel every open batch; a line on each (what was done or why not).
    One whose creation was never confirmed is looked up first."""

    async def cancel_one(provider: BatchProvider, batch: OpenBatch) -> str:
        ids = [batch.batch_id] if batch.batch_id else []
        if not ids:
            since = datetime.fromisoformat(batch.submitted)
            found = await provider.find_batches(batch.label, since, len(index.owed(batch)))
            ids = [found_id for found_id in found if found_id not in index.batch_ids][:1]
        if not ids:
            return f"{batch.label}: never created at the provider; nothing to cancel"
        await provider.cancel_batch(ids[0])
        return f"{ids[0]} ({batch.model}, {len(index.owed(batch)):,} jobs): cancel requested"

    return await _each(index, runs, config, cancel_one)


async def _each(
    index: ResumeIndex,
    runs: Mapping[str, Sender],
    config: str | None,
    act: Callable[[BatchProvider, OpenBatch], Any],
) -> list[tuple[OpenBatch, str]]:
    """`act` on every open batch with its model's provider; a problem making the provider or
    answering is the batch's line instead (prefixed `error:`)."""
    providers: dict[tuple[str, str], BatchProvider | str] = {}
    lines = []
    try:
        for batch in index.batches.values():
            sender = runs.get(batch.run_id)
            where = config or (sender.config if sender else None)
            if where is None:
                lines.append((batch, "error: no run line names its config; pass --config"))
                continue
            provider = providers.get((where, batch.model))
            if provider is None:
                provider = providers[where, batch.model] = await _provider(where, batch.model)
            if isinstance(provider, str):
                lines.append((batch, f"error: {provider}"))
                continue
            try:
                lines.append((batch, await act(provider, batch)))
            except ProviderError as error:
                lines.append((batch, f"error: {type(error).__name__}: {error}"))
    finally:
        for provider in providers.values():
            if not isinstance(provider, str):
                await provider.aclose()
    return lines


async def _provider(config: str, model: str) -> BatchProvider | str:
    """The provider of `model` in `config`, or why there is none."""
    try:
        setup = setup_model(config, model)
    except InputError as exc:
        return f"{str(exc).splitlines()[0]} (--config CONFIG names the config to use)"
    provider = setup.provider_cls(setup.model.model_id, setup.options)
    if not isinstance(provider, BatchProvider):
        await provider.aclose()
        return f'{config}: provider "{setup.model.provider}" of {model} has no batch API'
    return provider


def sender_commands(
    runs: Mapping[str, Sender], batches: Sequence[OpenBatch]
) -> list[tuple[str, ...]]:
    """The command lines (after `-m harness`) of the runs that sent `batches`, each once."""
    seen: dict[tuple[str, ...], None] = {}
    for batch in batches:
        sender = runs.get(batch.run_id)
        if sender is not None and sender.argv:
            seen[sender.argv] = None
    return list(seen)
