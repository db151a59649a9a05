"""Batch mode end to end: the real SDKs' batch clients against loopback batch servers, for both
providers. What the servers were sent is counted per job, the ledger read back line by line."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.config.prices import cost_usd, price_for
from harness.ledger.index import build_index
from harness.ledger.lines import read_ledger
from harness.ledger.shards import part_of
from harness.providers import provider_class
from tests.conftest import ledger_lines, results
from tests.harness.providers.batch_project import (
    KEY,
    KINDS,
    model_table,
    number_of,
    project,
    sent_per_job,
    server,
)

pytestmark = pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("BATCH_TEST_KEY", KEY)


def test_a_thousand_jobs_run_in_batches_each_sent_once_and_priced_at_the_batch_rate(
    kind, tmp_path, run_cli
):
    backend = kind.backend(delay=0.3)
    with server(kind, backend) as loopback:
        config = project(tmp_path, model_table(kind, loopback.base_url), prompts=500)
        code, out, err = run_cli("run", config)
    assert code == 0, out + err
    sent = sent_per_job(kind, backend)
    assert len(sent) == 1000 and set(sent.values()) == {1}
    assert len(backend.batches) == 4  # 300 + 300 + 300 + 100
    ledger = tmp_path / "out" / "ledger.jsonl"
    records = results(ledger)
    batch_lines = [r for r in records if r.get("type") == "batch"]
    records = [r for r in records if r.get("type") != "batch"]
    assert Counter(line["event"] for line in batch_lines) == {
        "submit": 4,
        "submitted": 4,
        "closed": 4,
    }
    assert len(records) == 1000 and {r["status"] for r in records} == {"ok"}
    assert {r["mode"] for r in records} == {"batch"}
    assert {r["batch_id"] for r in records} == {
        line["batch_id"] for line in batch_lines if line["event"] == "submitted"
    }
    assert all(0.3 <= r["elapsed_seconds"] < 5 for r in records)  # the batch's processing time
    live = price_for(kind.provider, kind.model)
    assert live is not None and live.batch_discount == 0.5
    for record in records:
        billing = provider_class(kind.provider).billing
        assert record["cost_usd"] == pytest.approx(cost_usd(live, record["tokens"], billing) / 2)
    index = build_index(ledger)
    assert not index.batches and not index.awaiting and len(index.answered) == 1000
    assert "batch s" in out


def test_errors_inside_a_batch_are_classified_then_rerun_in_batch_and_live(kind, tmp_path, run_cli):
    def outcome(request):
        number = number_of(kind.prompt_of(request))
        return {3: "400", 5: "overloaded"}.get(number % 10, "ok")

    backend = kind.backend(delay=0.05, outcome=outcome)
    ledger = tmp_path / "out" / "ledger.jsonl"
    with server(kind, backend) as loopback:
        config = project(tmp_path, model_table(kind, loopback.base_url), prompts=40)
        code, out, _ = run_cli("run", config)
        assert code == 1
        failed = [r for r in results(ledger) if r.get("status") == "error"]
        types = Counter((r["error"]["type"], r["error"]["status"]) for r in failed)
        overloaded = 529 if kind.provider == "anthropic" else 503
        assert types == {("FatalError", 400): 8, ("ServerError", overloaded): 8}
        assert all(r["mode"] == "batch" and r["batch_id"] for r in failed)
        assert "--error-type ServerError" in out and "--error-type FatalError" in out

        backend.outcome = lambda request: "ok"
        assert run_cli("rerun", config, "--error-type", "ServerError")[0] == 0
        assert len(backend.batches) == 2  # the 8 overloaded ones, in a batch of their own
        latest = {r["key"]: r for r in results(ledger) if "key" in r}
        assert Counter(r["status"] for r in latest.values()) == {"ok": 72, "error": 8}

        live_before = len(loopback.seen)
        code, _, _ = run_cli("rerun", config, "--mode", "live")
        assert code == 0
    assert len(loopback.seen) - live_before == 8  # the 400s, sent live this time
    latest = {r["key"]: r for r in results(ledger) if "key" in r}
    assert len(latest) == 80 and {r["status"] for r in latest.values()} == {"ok"}
    assert Counter(r["mode"] for r in latest.values()) == {"batch": 72, "live": 8}


def test_a_malformed_answer_in_a_batch_fails_its_job_only_and_the_batch_closes(
    kind, tmp_path, run_cli
):
    def outcome(request):
        return "malformed" if number_of(kind.prompt_of(request)) == 2 else "ok"

    backend = kind.backend(delay=0.05, outcome=outcome)
    with server(kind, backend) as loopback:
        config = project(tmp_path, model_table(kind, loopback.base_url), prompts=5)
        code, out, _ = run_cli("run", config)
    assert code == 1
    lines = results(tmp_path / "out" / "ledger.jsonl")
    records = [r for r in lines if "key" in r]
    failed = [r for r in records if r["status"] == "error"]
    assert len(records) == 10 and {r["prompt_id"] for r in failed} == {"p002"} and len(failed) == 2
    assert {r["error"]["type"] for r in failed} == {"MalformedResponse"}
    named = "content: expected a list" if kind.provider == "anthropic" else "candidates: expected"
    assert all(named in r["error"]["message"] for r in failed)
    assert [line["event"] for line in lines if "event" in line][-1] == "closed"
    assert "--error-type MalformedResponse" in out


def test_an_expired_batch_fails_its_jobs_as_batch_expired(kind, tmp_path, run_cli):
    backend = kind.backend(delay=0.05, expire=True)
    with server(kind, backend) as loopback:
        config = project(tmp_path, model_table(kind, loopback.base_url), prompts=5)
        code, out, _ = run_cli("run", config)
    assert code == 1
    records = [r for r in results(tmp_path / "out" / "ledger.jsonl") if "key" in r]
    assert len(records) == 10
    assert {r["error"]["type"] for r in records} == {"BatchExpired"}
    assert "--error-type BatchExpired" in out


def test_a_live_model_and_a_batch_model_run_at_once(kind, tmp_path, run_cli):
    backend = kind.backend(delay=3.0)
    with server(kind, backend) as loopback:
        loopback.delay = 0.2  # each live answer: 40 of them, 16 at a time, take about 0.6 s
        live = model_table(kind, loopback.base_url, name="fast", mode="live")
        batched = model_table(kind, loopback.base_url, name="cheap")
        config = project(tmp_path, live + batched, prompts=20)
        code, out, err = run_cli("run", config)
    assert code == 0, out + err
    (batch,) = backend.batches.values()  # 40 jobs in one batch
    arrivals = [seen.at for seen in loopback.seen if "batch" not in seen.path]
    assert len(arrivals) == 40
    created, ended = batch.started, batch.started + batch.delay
    assert created < max(arrivals) and max(arrivals) < ended  # live answers came meanwhile
    records = [r for r in results(tmp_path / "out" / "ledger.jsonl") if "key" in r]
    assert Counter(r["mode"] for r in records) == {"live": 40, "batch": 40}


def test_a_batch_line_carries_every_key_and_hash_before_its_id(kind, tmp_path, run_cli):
    backend = kind.backend()
    with server(kind, backend) as loopback:
        config = project(tmp_path, model_table(kind, loopback.base_url), prompts=3)
        assert run_cli("run", config)[0] == 0
    lines = ledger_lines(tmp_path / "out" / "ledger.jsonl")
    submit = next(line for line in lines if line.get("event") == "submit")
    submitted = next(line for line in lines if line.get("event") == "submitted")
    assert lines.index(submit) < lines.index(submitted)
    records = [r for r in lines if "key" in r]
    assert sorted(submit["keys"]) == sorted(r["key"] for r in records)
    by_key = {r["key"]: r["prompt_hash"] for r in records}
    assert [by_key[key] for key in submit["keys"]] == submit["hashes"]
    assert submit["provider"] == kind.provider and submit["model"] == "m"
    assert read_ledger(tmp_path / "out" / "ledger.jsonl").skipped == 0


def test_a_budget_cap_holds_over_batches_and_the_next_run_goes_on(kind, tmp_path, run_cli):
    backend = kind.backend(delay=0.05)
    ledger = tmp_path / "out" / "ledger.jsonl"
    with server(kind, backend) as loopback:
        table = model_table(
            kind, loopback.base_url, batch="max_requests = 10\npoll_interval = 0.02"
        )
        config = project(tmp_path, table, prompts=100, head="budget_usd = 0.001\n")
        code, out, _ = run_cli("run", config)
        assert code == 4, out
        records = [r for r in results(ledger) if "key" in r]
        assert 0 < len(records) < 200 and sum(r["cost_usd"] for r in records) <= 0.001
        config.write_text(config.read_text().replace("budget_usd = 0.001", "budget_usd = 1.0"))
        assert run_cli("run", config)[0] == 0
    sent = sent_per_job(kind, backend)
    assert len(sent) == 200 and set(sent.values()) == {1}


def test_a_create_that_fails_is_retried_and_one_refused_fails_its_jobs_in_batch_mode(
    kind, tmp_path, run_cli
):
    backend = kind.backend(create_errors=["overloaded", "400"])
    ledger = tmp_path / "out" / "ledger.jsonl"
    with server(kind, backend) as loopback:
        table = model_table(
            kind, loopback.base_url, batch="max_requests = 10\npoll_interval = 0.02"
        )
        config = project(tmp_path, table, prompts=10)  # 20 jobs: 2 batches
        assert run_cli("run", config)[0] == 1
    records = [r for r in results(ledger) if "key" in r]
    refused = [r for r in records if r["status"] == "error"]
    assert len(refused) == 10 and len(backend.batches) == 1  # the overloaded one, retried
    assert {(r["error"]["type"], r["error"]["status"]) for r in refused} == {("FatalError", 400)}
    assert {(r["mode"], r["batch_id"]) for r in refused} == {("batch", None)}
    states = sorted(line["state"] for line in results(ledger) if line.get("event") == "closed")
    assert states[0] in ("ended", "JOB_STATE_SUCCEEDED") and states[1].startswith("not created: ")


def test_shards_in_batch_mode_send_each_job_once_and_merge_whole(kind, tmp_path, run_cli):
    backend = kind.backend(delay=0.05)
    with server(kind, backend) as loopback:
        config = project(tmp_path, model_table(kind, loopback.base_url), prompts=200)
        for shard in ("0/3", "1/3", "2/3"):
            code, out, err = run_cli("run", config, "--shard", shard)
            assert code == 0, out + err
    sent = sent_per_job(kind, backend)
    assert len(sent) == 400 and set(sent.values()) == {1}
    out = tmp_path / "out"
    for k in range(3):
        lines = ledger_lines(out / "shards" / f"{k}-of-3" / "ledger.jsonl")
        keys = [key for line in lines if line.get("event") == "submit" for key in line["keys"]]
        assert keys and all(part_of(key, 3) == k for key in keys)
    assert run_cli("merge", out, "--into", out)[0] == 0
    index = build_index(out / "ledger.jsonl")
    assert not index.batches and not index.awaiting and len(index.answered) == 400
