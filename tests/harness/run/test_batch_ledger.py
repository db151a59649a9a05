"""Batch lines in the ledger: the resume index keeps every open batch and the keys it still owes a
record; every reader passes them over without counting them as damage."""

from __future__ import annotations

import orjson

from harness.analysis.answers import latest_offsets
from harness.ledger.index import build_index
from harness.ledger.lines import read_ledger, sealed
from harness.run.batch_lane import reattachable
from harness.run.prepare import prepare
from harness.run.rerun import failed_jobs
from harness.run.summary import summarize
from tests.conftest import SIMPLE_MODEL, write_config

HASH = "0123456789abcdef"


def record(key: str, status: str = "ok", **extra) -> bytes:
    variant, prompt_id, sample = key.split("|")
    fields = {"key": key, "status": status, "prompt_hash": HASH, "schema": 2, "run_id": "r"}
    fields |= {"variant": variant, "prompt_id": prompt_id, "sample": int(sample)}
    fields |= {"timestamp": "2026-01-01T00:00:00.000Z", "elapsed_seconds": 1.0, "tokens": None}
    return sealed({**fields, "error": {"type": "ServerError"} if status == "error" else None})


def unsealed(key: str) -> bytes:
    """A record of schema 1 (no checksum): read whole, not from its head."""
    variant, prompt_id, sample = key.split("|")
    fields = {"schema": 1, "key": key, "status": "ok", "variant": variant, "prompt_id": prompt_id}
    return orjson.dumps({**fields, "sample": int(sample)}) + b"\n"


def submit(label: str, keys: list[str]) -> bytes:
    return sealed({**_submit_fields(label), "keys": keys, "hashes": [HASH] * len(keys)})


def submitted(label: str, batch_id: str) -> bytes:
    return sealed({"type": "batch", "event": "submitted", "batch": label, "batch_id": batch_id})


def closed(label: str) -> bytes:
    return sealed({"type": "batch", "event": "closed", "batch": label, "state": "ended"})


KEYS = ["v|a|0", "v|b|0", "v|c|0"]


def test_a_submitted_batch_stays_open_owing_every_key_without_a_record_since(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(
        record("v|a|0", "error") + submit("hb-1", KEYS) + submitted("hb-1", "msgbatch_1")
    )
    index = build_index(path)
    (batch,) = index.batches.values()
    assert (batch.label, batch.batch_id, batch.model) == ("hb-1", "msgbatch_1", "sim")
    assert index.owed(batch) == [0, 1, 2] and index.batch_ids == {"msgbatch_1"}
    path.write_bytes(path.read_bytes() + record("v|b|0") + unsealed("v|c|0"))
    index = build_index(path)  # a record read from its head, and one read whole
    assert index.owed(index.batches["hb-1"]) == [0] and index.awaiting == {"v|a|0": "hb-1"}


def test_a_closed_batch_releases_its_keys_and_a_failure_it_carried_is_failing_again(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(record("v|a|0", "error") + submit("hb-1", KEYS) + record("v|b|0"))
    assert build_index(path).awaiting.keys() == {"v|a|0", "v|c|0"}
    path.write_bytes(path.read_bytes() + closed("hb-1"))
    index = build_index(path)
    assert not index.batches and not index.awaiting
    assert set(index.failures) == {"v|a|0"}


def test_a_batch_never_confirmed_is_open_without_an_id(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(submit("hb-1", KEYS))
    (batch,) = build_index(path).batches.values()
    assert batch.batch_id is None and batch.keys == KEYS


def test_damaged_or_misshapen_batch_lines_are_skipped_and_open_nothing(tmp_path):
    path = tmp_path / "ledger.jsonl"
    good = submit("hb-1", KEYS)
    flipped = good.replace(b"hb-1", b"hb-2")  # its checksum no longer matches
    uneven = sealed({**_submit_fields("hb-3"), "hashes": [HASH]})  # 3 keys, 1 hash
    path.write_bytes(flipped + uneven + good[:40])
    index = build_index(path)
    assert not index.batches and not index.awaiting and index.skipped == 3


def test_readers_pass_batch_lines_over_without_counting_them_as_unreadable(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(
        submit("hb-1", KEYS) + submitted("hb-1", "msgbatch_1") + record("v|a|0") + closed("hb-1")
    )
    contents = read_ledger(path)
    assert len(contents.batches) == 3 and len(contents.records) == 1 and contents.skipped == 0
    summary = summarize(path)
    assert summary.records == 1 and summary.skipped == 0
    assert list(latest_offsets(path)) == ["v|a|0"]


def test_a_failed_job_that_an_open_batch_carries_again_is_not_rerun(tmp_path):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=2)
    prepared = prepare(config)
    keys = [f"{variant.id}|p00{i}|0" for variant in prepared.variants for i in range(2)]
    path = prepared.ledger_path
    path.parent.mkdir()
    path.write_bytes(b"".join(record(key, "error") for key in keys) + submit("hb-1", keys[:1]))
    failed = failed_jobs(prepared, build_index(path))
    assert set(failed.runnable) == set(keys[1:])


def test_an_open_batch_owing_nothing_of_a_model_now_served_live_is_one_clear_line(
    tmp_path, run_cli
):
    # Its records all came, not its closing line; "sim" is now an OpenAI (no batch API) model.
    body = SIMPLE_MODEL.replace('"simulated"', '"openai"')
    config = write_config(tmp_path, body + '[models.options]\napi_key_env = ""\n')
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ledger.jsonl").write_bytes(submit("hb-1", []))
    code, _, err = run_cli("run", config)
    assert code == 2
    assert err.splitlines() == [
        f"error: {config}: model sim: the ledger's open batch hb-1 was sent through provider "
        '"anthropic", and "openai" has no batch API to close it: set provider = "anthropic" '
        "for one run"
    ]


def _submit_fields(label: str) -> dict:
    return {
        "type": "batch",
        "event": "submit",
        "batch": label,
        "run_id": "r",
        "model": "sim",
        "provider": "anthropic",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "keys": KEYS,
        "hashes": [HASH] * 3,
    }


def test_an_open_batchs_jobs_are_made_again_with_the_failures_they_were_sent_with(tmp_path):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=2)
    prepared = prepare(config)
    keys = [f"{variant.id}|p00{i}|0" for variant in prepared.variants for i in range(2)]
    path = prepared.ledger_path
    path.parent.mkdir()
    failures = record(keys[0], "error") + record(keys[0], "error") + record(keys[1], "error")
    path.write_bytes(failures + submit("hb-1", keys[:2]) + submitted("hb-1", "simbatch_1"))
    index = build_index(path)
    found = reattachable(index, prepared.variants, prepared.prompts, 1)
    (batch,) = found.by_model["sim"]
    assert {job.key: job.failed_before for job in batch.jobs.values()} == {keys[0]: 2, keys[1]: 1}
