"""The provider contract is written down: a new provider is its class plus one registry line,
every hook the run path calls is declared on `harness.api.provider.Provider` with a default, and
provider knowledge (how tokens count, what a batch discount covers, what is pushback) lives in
the provider classes, not in the core."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import zlib
from pathlib import Path

import pytest
from aiohttp import web

from harness.api.provider import BatchProvider, Provider
from harness.api.types import Completion, Request, Usage
from harness.errors import InputError, RetryableError, ServerError
from harness.providers import REGISTRY, Entry, batch_providers, holds_device, provider_class
from harness.providers.options import OPTIONS, AnthropicOptions
from tests.conftest import REPO, results, write_config
from tests.harness.providers.servers import Loopback, Seen, json_error
from tests.harness.providers.test_anthropic import messages_api
from tests.harness.providers.test_gemini import generate_content, google_error
from tests.harness.providers.test_openai import openai_api

HARNESS = REPO / "harness"


class Echo(Provider):
    """A provider with nothing but `generate`: every other hook is the base class's."""

    async def generate(self, request: Request) -> Completion:
        text = request.messages[-1].content
        return Completion(text=text, finish_reason="stop", usage=Usage(3, 5), model=self.model)


ECHO = """
[retry]
max_attempts = 3
initial_wait = 0.0
max_wait = 0.0

[[models]]
name = "echo"
provider = "echo"
model = "echo-1"
temperatures = [0.0]
"""


@pytest.fixture
def echo_registered(monkeypatch):
    """The one registry line a new provider adds."""
    monkeypatch.setitem(REGISTRY, "echo", Entry(__name__, "Echo"))


def test_a_provider_of_one_class_and_one_registry_line_runs_plans_and_is_diagnosed(
    tmp_path, run_cli, echo_registered
):
    config = write_config(tmp_path, ECHO, prompts=4)
    code, out, err = run_cli("run", config)
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert code == 0, err
    assert len(records) == 4 and {r["status"] for r in records} == {"ok"}
    assert {r["model"] for r in records} == {"echo-1"}
    assert run_cli("plan", config)[0] == 0
    code, out, _ = run_cli("doctor", config, "--probe")
    assert code == 0 and "no key needed" in out and "gpu" not in out
    batch = ECHO + 'mode = "batch"\n'
    code, _, err = run_cli("run", write_config(tmp_path, batch))
    batched = "(batch mode: anthropic, gemini, simulated)"
    assert code == 2 and f'provider "echo" has no batch API {batched}' in err


class NotAProvider:
    """A class registered as a provider that is none."""


class Unfinished(Provider):
    """A provider that forgot `generate`."""


class OwnOptions(Echo):
    """A provider that declares its options on its class, not in `OPTIONS`."""

    Options = AnthropicOptions


# A registered class that cannot serve, and the end of the line that says why.
UNSERVABLE = {
    "NotAProvider": "NotAProvider is not a subclass of harness.api.provider.Provider",
    "Ehco": "Ehco does not exist",
    "Unfinished": "Unfinished does not implement generate",
    "OwnOptions": "OwnOptions declares its own Options: a provider's options are its entry in "
    "harness.providers.options.OPTIONS",
}


@pytest.mark.parametrize(("cls", "why"), UNSERVABLE.items(), ids=list(UNSERVABLE))
def test_a_registered_class_that_cannot_serve_is_one_line_naming_the_model_exit_2(
    tmp_path, run_cli, monkeypatch, cls, why
):
    monkeypatch.setitem(REGISTRY, "echo", Entry(__name__, cls))
    config = write_config(tmp_path, ECHO)
    line = f'error: {config}: models[0] (echo): provider "echo": {__name__}.{why}'
    for verb in ("run", "plan"):
        code, out, err = run_cli(verb, config)
        assert (code, out, err.splitlines()) == (2, "", [line]), verb
    code, out, _ = run_cli("doctor", config)  # its table wraps the line
    assert code == 2 and "FAIL" in out
    assert not (tmp_path / "out").exists()


def test_a_provider_that_cannot_serve_leaves_a_fresh_run_s_ledger_as_it_was(
    tmp_path, run_cli, echo_registered, monkeypatch
):
    config = write_config(tmp_path, ECHO, prompts=2)
    assert run_cli("run", config)[0] == 0
    before = sorted((p.name, p.read_bytes()) for p in (tmp_path / "out").rglob("*") if p.is_file())
    monkeypatch.setitem(REGISTRY, "echo", Entry(__name__, "Unfinished"))
    code, out, err = run_cli("run", config, "--fresh")
    assert (code, out) == (2, "") and "does not implement generate" in err
    after = sorted((p.name, p.read_bytes()) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert after == before


def test_a_provider_that_takes_no_options_says_so(tmp_path, run_cli, echo_registered):
    config = write_config(tmp_path, ECHO + '[models.options]\nprefix = ">> "\n')
    code, _, err = run_cli("run", config)
    assert code == 2
    assert err.splitlines() == [
        f'error: {config}: models[0].options: provider "echo" takes no options'
    ]


def test_a_provider_s_options_are_those_options_declares_for_it(
    tmp_path, run_cli, echo_registered, monkeypatch
):
    """A provider's options are its entry in `OPTIONS`, with nothing on its class."""
    monkeypatch.setitem(OPTIONS, "echo", AnthropicOptions)
    body = ECHO + '[models.options]\nbase_url = "http://127.0.0.1:9"\napi_key = "k"\n'
    code, _, err = run_cli("run", write_config(tmp_path, body, prompts=2))
    assert code == 0, err
    body = ECHO + "[models.options]\ntimeout = 0\n"
    code, _, err = run_cli("run", write_config(tmp_path, body, prompts=2))
    assert code == 2 and "models[0].options.timeout: must be >= 0.001, got 0.0" in err


UNIMPORTABLE = """
[[models]]
name = "u"
provider = "unimportable"
"""


@pytest.mark.parametrize(
    ("body", "told"),
    [
        (UNIMPORTABLE + "[models.options]\ntimout = 3\n", "models[0].options.timout: unknown key"),
        ("bogus = 1\n" + UNIMPORTABLE, "bogus: unknown key"),
        (UNIMPORTABLE + 'mode = "batch"\n', 'provider "unimportable" has no batch API'),
    ],
    ids=["a wrong option", "a mistake elsewhere", "batch mode"],
)
def test_a_config_s_mistakes_are_told_without_importing_a_device_provider(
    tmp_path, run_cli, monkeypatch, body, told
):
    """Its module raises when imported: vLLM's takes seconds, and a typo is told at once."""
    monkeypatch.setitem(
        REGISTRY, "unimportable", Entry(f"{__package__}.unimportable_provider", "Unimportable")
    )
    monkeypatch.setitem(OPTIONS, "unimportable", AnthropicOptions)
    config = write_config(tmp_path, body)
    for verb in ("run", "plan"):
        code, _, err = run_cli(verb, config)
        assert code == 2 and len(err.splitlines()) == 1 and told in err, (verb, err)


class HalfBusy(Echo):
    """Every other first attempt is a 503 that the provider says means "slow down"."""

    async def generate(self, request: Request) -> Completion:
        if request.attempt == 1 and zlib.crc32(request.messages[-1].content.encode()) % 2:
            raise ServerError("busy", status=503)
        return await super().generate(request)

    def pushed_back(self, error: RetryableError) -> bool:
        return error.status == 503


BUSY = """
[retry]
max_attempts = 3
initial_wait = 0.0
max_wait = 0.0

[[models]]
name = "busy"
provider = "busy"
model = "busy-1"
temperatures = [0.0]
max_concurrency = 8
"""


def test_a_providers_own_pushback_hook_slows_its_lane(tmp_path, run_cli, monkeypatch):
    monkeypatch.setitem(REGISTRY, "busy", Entry(__name__, "HalfBusy"))
    code, out, _ = run_cli("run", write_config(tmp_path, BUSY, prompts=64))
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert code == 0 and len(records) == 64 and {r["status"] for r in records} == {"ok"}
    assert "concurrency 8 -> 4" in out


# Per HTTP provider: its server's good answer, its body for a 529, and the URL of that server.
OVERLOADED = {
    "anthropic": (
        messages_api,
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        "{}",
    ),
    # A gateway in front of Claude, spoken to as an OpenAI-compatible server.
    "openai": (
        openai_api,
        {"error": {"type": "overloaded_error", "message": "Overloaded"}},
        "{}/v1",
    ),
    "gemini": (generate_content, google_error(529, "UNAVAILABLE", "Overloaded"), "{}"),
}


@pytest.mark.parametrize("provider", sorted(OVERLOADED))
def test_an_overloaded_529_slows_the_lane_of_every_http_provider(
    tmp_path, run_cli, monkeypatch, provider
):
    """The 529 that `_http.error_for_status` classifies as "overloaded" is pushback, whichever
    HTTP provider's SDK it comes through."""
    answer, overloaded, url = OVERLOADED[provider]
    monkeypatch.setenv("TEST_HTTP_KEY", "k")
    answered: set[str] = set()

    def half_overloaded(outcome: str, seen: Seen) -> web.Response:
        request = json.dumps(seen.body, sort_keys=True)  # a retry sends the same body
        if zlib.crc32(request.encode()) % 2 and request not in answered:
            answered.add(request)
            return json_error(529, overloaded)
        return answer("ok", seen)

    with Loopback(half_overloaded) as server:
        body = BUSY.replace('"busy"', f'"{provider}"').replace('"busy-1"', '"model-test"')
        body += f'[models.options]\nbase_url = "{url.format(server.base_url)}"\n'
        body += 'api_key_env = "TEST_HTTP_KEY"\n'
        code, out, _ = run_cli("run", write_config(tmp_path, body, prompts=64))
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert code == 0 and len(records) == 64 and {r["status"] for r in records} == {"ok"}
    assert len(answered) > 8 and "concurrency 8 -> 4" in out


@pytest.mark.slow  # imports every provider's SDK, vllm's included
def test_the_registry_names_as_batch_providers_exactly_the_batch_provider_classes():
    batched = set(batch_providers())
    for name in REGISTRY:
        assert (name in batched) == issubclass(provider_class(name), BatchProvider), name


@pytest.mark.slow  # imports every provider's SDK, vllm's included
def test_whether_a_provider_holds_the_device_reads_from_its_source_as_its_class_says():
    for name in REGISTRY:
        assert holds_device(name) == provider_class(name).holds_device, name
    assert {name for name in REGISTRY if holds_device(name)} == {"vllm", "transformers"}


def test_a_provider_that_holds_the_device_says_how_it_runs_without_a_gpu():
    """`doctor` shows this when there is no GPU, whether or not the provider's SDK is there."""
    for name, entry in REGISTRY.items():
        assert bool(entry.cpu_route) == holds_device(name), name


def _getattr_by_name(path: Path) -> list[str]:
    """`getattr(x, "name"...)` and `hasattr(x, "name")` calls in a module: discovery by name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
        ):
            found.append(f"{path.relative_to(HARNESS.parent)}:{node.lineno}")
    return found


def test_the_run_path_finds_no_provider_hook_or_option_by_getattr():
    modules = [*(HARNESS / "run").rglob("*.py"), *(HARNESS / "config").rglob("*.py")]
    modules.append(HARNESS / "providers" / "_local.py")
    assert [hit for path in modules for hit in _getattr_by_name(path)] == []


def test_the_core_names_no_provider():
    """What a provider's answers mean is its class's to say; the pricing, lanes and ledger never
    test a provider's name, nor tell what one does (the run line's package versions name
    packages, not providers; docstrings may give examples)."""
    names = set(REGISTRY) - {"simulated"}
    modules = [
        path
        for floor in ("run", "config", "ledger")
        for path in (HARNESS / floor).rglob("*.py")
        if path.name != "provenance.py"
    ]
    named = [
        f"{path.relative_to(HARNESS.parent)}:{line}"
        for path in modules
        for line, text in _strings(path)
        if names & set(re.findall(r"[a-z]+", text.lower()))
    ]
    assert named == []


def _strings(path: Path) -> list[tuple[int, str]]:
    """The string constants of a module (f-strings' literal parts too), docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, documented) and node.body and isinstance(node.body[0], ast.Expr)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


LOCAL = {"vllm", "transformers"}  # their SDKs take seconds to import


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow if n in LOCAL else ()) for n in REGISTRY]
)
def test_every_provider_instance_has_the_attributes_the_base_class_declares(name, monkeypatch):
    """What `Provider.__init__` sets (model, options, adapters) is there on every provider."""
    monkeypatch.setenv("TEST_KEY", "k")
    cls = provider_class(name)
    fields = {f.name for f in dataclasses.fields(OPTIONS[name])}
    options = OPTIONS[name](**({"api_key_env": "TEST_KEY"} if "api_key_env" in fields else {}))
    declared = vars(Echo("model-1", options))
    built = cls("model-1", options)
    assert {attr: getattr(built, attr, "missing") for attr in declared} == declared


def test_a_provider_whose_installed_package_lacks_a_part_names_the_version_and_the_part(
    tmp_path, monkeypatch
):
    (tmp_path / "uses_a_missing_part.py").write_text("import json.no_such_part\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(REGISTRY, "echo", Entry("uses_a_missing_part", "Echo", "json"))
    monkeypatch.setattr(json, "__version__", "9.9", raising=False)
    with pytest.raises(InputError) as caught:
        provider_class("echo")
    assert str(caught.value) == (
        'provider "echo" cannot use the installed json 9.9: it has no json.no_such_part'
    )
