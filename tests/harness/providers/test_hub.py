"""Local weights: a folder, or a hub id resolved to its commit through a Hugging Face cache laid out
in the test, with no network."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import constants

from harness.errors import InputError
from harness.providers._hub import locate

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def lay_out_cache(cache: Path, repo: str, commits: dict[str, str]) -> None:
    """The cache's own layout: `models--org--name/snapshots/<commit>/` and `refs/<name>`."""
    root = cache / f"models--{repo.replace('/', '--')}"
    for ref, commit in commits.items():
        snapshot = root / "snapshots" / commit
        snapshot.mkdir(parents=True, exist_ok=True)
        (snapshot / "config.json").write_text('{"model_type": "llama"}')
        (snapshot / "model.safetensors").write_bytes(b"\0" * 1000)
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / ref).write_text(commit)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "hub"
    lay_out_cache(folder, "harness-test/tiny", {"main": COMMIT, "v2": OTHER})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return folder


def test_a_cached_hub_id_resolves_to_its_commit_without_network(cache):
    weights = locate("harness-test/tiny")
    assert weights.commit == COMMIT and weights.folder is not None
    assert weights.folder.name == COMMIT and weights.size == 1000 + len('{"model_type": "llama"}')
    assert "cached" in weights.describe() and COMMIT[:12] in weights.describe()


def test_a_branch_tag_or_commit_picks_its_own_snapshot(cache):
    assert locate("harness-test/tiny", "v2").commit == OTHER
    assert locate("harness-test/tiny", OTHER).commit == OTHER
    assert locate("harness-test/tiny", COMMIT).commit == COMMIT


def test_a_model_neither_cached_nor_allowed_to_download_is_one_line(cache):
    with pytest.raises(InputError) as raised:
        locate("harness-test/absent")
    message = str(raised.value)
    assert "\n" not in message and "HF_HUB_OFFLINE=1" in message and str(cache) in message


def test_a_revision_missing_from_the_cache_is_one_line(cache):
    with pytest.raises(InputError, match="at revision v9 is not in the Hugging Face cache"):
        locate("harness-test/tiny", "v9")


def test_a_folder_must_hold_a_model_and_takes_no_revision(tmp_path):
    with pytest.raises(InputError, match=r"expected a folder with config\.json"):
        locate(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert locate(str(tmp_path)).commit is None
    with pytest.raises(InputError, match="is for hub ids"):
        locate(str(tmp_path), "main")
