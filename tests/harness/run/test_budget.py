"""Budget caps: never passed, whatever the concurrency and answer lengths; a stopped run resumes
under the same cap without spending more; a model without a price under a budget is an error."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from rich.console import Console

from harness.errors import EXIT_BUDGET
from harness.ledger.index import build_index
from harness.run.execute import execute, pending
from harness.run.prepare import prepare
from tests.clock import run_virtual
from tests.conftest import results, write_config

PRICE = "[models.price]\ninput = 3.0\noutput = 15.0\n"
# The most one attempt can cost here: (2 x its estimated input + 32) tokens in, 300 out.
WORST = (2 * (len("Does thing number 100 exist?") // 4 + 1) + 32) * 3e-6 + 300 * 15e-6


def capped(cap: float, seed: int, *, per_model: bool = False) -> str:
    budget = "" if per_model else f"budget_usd = {cap}\n"
    model_budget = f"budget_usd = {cap}\n" if per_model else ""
    return f"""{budget}
[[models]]
name = "paid"
provider = "simulated"
temperatures = [0.7]
max_tokens = 300
max_concurrency = 64
{model_budget}[models.options]
latency_ms = 100
output_tokens = {150 + 20 * seed}
{PRICE}"""


def virtual_run(config) -> int:
    prepared = prepare(config)

    async def main() -> int:
        wanted = pending(build_index(prepared.ledger_path))
        return await execute(
            prepared, command="run", wanted=wanted, console=Console(file=io.StringIO())
        )

    return run_virtual(main)


def spent(tmp_path) -> float:
    return sum(r["cost_usd"] or 0.0 for r in results(tmp_path / "out" / "ledger.jsonl"))


@pytest.mark.parametrize("seed", range(5))
def test_the_cap_is_never_passed_and_little_of_it_is_left_unused(tmp_path, seed):
    config = write_config(tmp_path, f"seed = {seed}\n" + capped(0.25, seed), prompts=200)
    config.write_text(config.read_text().replace("seed = 7\n", ""))
    assert virtual_run(config) == EXIT_BUDGET
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert len(records) < 200  # jobs remain
    assert 0.25 - WORST <= spent(tmp_path) <= 0.25


def test_a_run_stopped_at_its_cap_spends_nothing_more_until_the_cap_is_raised(tmp_path, run_cli):
    config = write_config(tmp_path, capped(0.1, 0), prompts=100)
    code, out, _ = run_cli("run", config)
    assert code == EXIT_BUDGET and "Stopped at the budget (ledger: $" in out
    first = len(results(tmp_path / "out" / "ledger.jsonl"))
    code, _, _ = run_cli("run", config)
    assert code == EXIT_BUDGET and len(results(tmp_path / "out" / "ledger.jsonl")) == first
    config.write_text(config.read_text().replace("budget_usd = 0.1", "budget_usd = 0.2"))
    code, _, _ = run_cli("run", config)
    assert code == EXIT_BUDGET and len(results(tmp_path / "out" / "ledger.jsonl")) > first
    assert spent(tmp_path) <= 0.2


def test_a_models_own_cap_stops_only_that_model(tmp_path, run_cli):
    free = '\n[[models]]\nname = "free"\nprovider = "simulated"\n'
    config = write_config(tmp_path, capped(0.05, 0, per_model=True) + free, prompts=60)
    code, out, _ = run_cli("run", config)
    assert code == EXIT_BUDGET and "paid: $" in out
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert sum(r["variant"].startswith("free") for r in records) == 60
    assert sum(r["cost_usd"] for r in records if r["variant"].startswith("paid")) <= 0.05


def test_a_model_without_a_price_under_a_budget_exits_2_unless_allowed(tmp_path, run_cli):
    config = write_config(tmp_path, capped(1.0, 0).replace(PRICE, ""), prompts=3)
    code, _, err = run_cli("run", config)
    assert code == 2 and 'no price known for "paid" under a budget' in err
    assert not (tmp_path / "out").exists()
    config.write_text(
        config.read_text().replace("max_tokens = 300", "max_tokens = 300\nunpriced_ok = true")
    )
    assert run_cli("run", config)[0] == 0


def test_an_unpriced_model_beside_a_capped_one_neither_waits_nor_blocks(tmp_path, run_cli):
    free = '\n[[models]]\nname = "free"\nprovider = "simulated"\nunpriced_ok = true\n'
    config = write_config(tmp_path, capped(0.05, 0) + free, prompts=60)
    code, _, _ = run_cli("run", config)
    assert code == EXIT_BUDGET
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert sum(r["variant"].startswith("free") for r in records) == 60
    assert spent(tmp_path) <= 0.05


def test_a_model_priced_by_the_gpu_hour_costs_its_lanes_wall_time(tmp_path, run_cli):
    body = '\n[[models]]\nname = "local"\nprovider = "simulated"\ntemperatures = [0.0, 0.7]\n'
    body += "cost_per_gpu_hour = 3600.0\nmax_concurrency = 4\n[models.options]\nlatency_ms = 50\n"
    config = write_config(tmp_path, body, prompts=8)
    code, out, _ = run_cli("run", config)
    assert code == 0
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert {r["cost_usd"] for r in records} == {0.0}  # its tokens are free
    starts = [
        datetime.fromisoformat(r["timestamp"]).timestamp() - r["elapsed_seconds"] for r in records
    ]
    ends = [datetime.fromisoformat(r["timestamp"]).timestamp() for r in records]
    lane_seconds = max(ends) - min(starts)  # $1 a second at 3,600 an hour
    total = float(out.split("total cost: $")[1].split()[0].replace(",", ""))
    assert lane_seconds * 0.99 <= total <= lane_seconds * 1.01 + 0.0001


def test_shards_share_a_cap_evenly_and_together_never_pass_it(tmp_path, run_cli):
    config = write_config(tmp_path, capped(0.12, 0), prompts=120)
    for k in range(3):
        code, out, _ = run_cli("run", config, "--shard", f"{k}/3")
        assert code == EXIT_BUDGET and "Stopped at the budget (ledger: $" in out
    shards = tmp_path / "out" / "shards"
    spent_each = [
        sum(r["cost_usd"] or 0.0 for r in results(shards / f"{k}-of-3" / "ledger.jsonl"))
        for k in range(3)
    ]
    assert all(0.04 - WORST <= each <= 0.04 for each in spent_each)
    assert sum(spent_each) <= 0.12
    code, _, _ = run_cli("run", config)  # a run of all the jobs counts what every shard spent
    assert code == EXIT_BUDGET
    assert sum(spent_each) + spent(tmp_path) <= 0.12
