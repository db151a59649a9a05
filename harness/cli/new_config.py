"""The verbs that write a config to start from: `init` (a commented config and five prompts for
"my prompts, my models") and `convert` (the legacy script's JSON config as TOML). Neither
replaces a file that exists, unless `convert --force` is given."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from harness.cli.legacy_config import Converted, convert
from harness.errors import EXIT_OK, InputError
from harness.input_files import json_object
from harness.ledger.targets import OwnFile, check_target, head
from harness.run.prepare import Overrides, prepare
from harness.terminal import Parser, command_line, file_to_write, say
from harness.whole import written_whole

CONFIG_NAME, PROMPTS_NAME = "config.toml", "prompts.jsonl"


def add_config_verbs(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add `init` and `convert` to the command line's verbs."""
    init = verbs.add_parser(
        "init", help="write a commented config and a five-line prompts file to start from"
    )
    init.add_argument("folder", nargs="?", default=".", help="where to write them (default: .)")
    init.set_defaults(verb=_init)

    legacy = verbs.add_parser("convert", help="the legacy script's JSON config as a TOML config")
    legacy.add_argument("legacy", type=Path, help="the legacy JSON config")
    legacy.add_argument(
        "--to", type=file_to_write, help="where to write (default: LEGACY with .toml)"
    )
    legacy.add_argument("--force", action="store_true", help="replace the file --to names")
    legacy.set_defaults(verb=_convert)


def _init(args: argparse.Namespace, console: Console) -> int:
    folder = Path(args.folder)
    config, prompts = folder / CONFIG_NAME, folder / PROMPTS_NAME
    try:
        _write_new(folder, [(prompts, _PROMPTS), (config, _CONFIG)])
    except OSError as exc:
        raise InputError(f"{exc.filename or folder}: cannot write: {exc.strerror or exc}") from None
    say(console, f"Wrote {config} (simulated models: no key, no GPU) and {prompts} (5 prompts).")
    shown = _argument(config)
    say(console, f"Run it: {command_line('run', shown)}")
    say(console, f"Label the answers: {command_line('score', shown)}")
    results = _argument(folder / "results")
    say(console, f"Rates with CIs: {command_line('stats', results, '--scorer', 'existence')}")
    say(console, f"Then put your prompts in {prompts} and your models in {config}.")
    return EXIT_OK


def _write_new(folder: Path, files: list[tuple[Path, str]]) -> None:
    """Write every file, none of which may be there yet, into `folder` (made when missing); an
    OSError leaves none of them behind."""
    there = [str(path) for path, _ in files if path.exists() or path.is_symlink()]
    if there:
        raise InputError(
            f"{', '.join(there)}: already there; nothing written (init another folder)"
        )
    if folder.is_symlink() and not folder.exists():
        raise InputError(f"{folder}: a link to nothing; init another folder")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for path, text in files:
            with written_whole(path) as temporary:
                temporary.write_text(text)
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _argument(path: Path) -> str:
    """A path as a command's argument: `./-x` for one that would read as an option."""
    return f"./{path}" if str(path).startswith("-") else str(path)


def _convert(args: argparse.Namespace, console: Console) -> int:
    source: Path = args.legacy
    target: Path = args.to or source.with_suffix(".toml")
    legacy = _legacy_table(source)
    try:
        text, converted = _converted(source, target, legacy, force=args.force)
        with written_whole(target) as temporary:
            temporary.write_text(text)
    except OSError as exc:
        raise InputError(f"{exc.filename or target}: cannot write: {exc.strerror or exc}") from None
    for choice in converted.choices:
        say(console, f"- {choice}")
    say(console, f"Wrote {target} (these choices are its first lines).")
    say(console, f"What it will cost and take: {command_line('plan', _argument(target))}")
    say(console, f"Run it: {command_line('run', _argument(target))}")
    return EXIT_OK


def _converted(
    source: Path, target: Path, legacy: dict[str, object], *, force: bool
) -> tuple[str, Converted]:
    """The config's text, checked as `plan` checks one (no key, engine or weights needed), and
    the conversion; InputError with every problem found, in the legacy config's terms."""
    if target.resolve() == source.resolve():
        raise InputError(f"{target}: the legacy config itself; give --to another path")
    check_target(
        target, "convert --to", _CONVERTED, force=force, hint="give --to another path, or --force"
    )
    converted = convert(legacy, target, Path.cwd())
    prompts = converted.table.get("prompts")
    if isinstance(prompts, str) and (target.parent / prompts).resolve() == target.resolve():
        raise InputError(f"{target}: the prompts file the config names; give --to another path")
    text = converted.toml(source)
    problems = [f"{source}: {line}" for line in converted.problems]
    if converted.checkable():
        try:
            prepare(target, Overrides(inline=text), planning=True)
        except InputError as exc:
            lines = str(exc).replace(f"{target}: ", "").split("\n")
            problems += [
                f"{source}: as converted, {converted.legacy_terms(line)}" for line in lines
            ]
    if problems:
        raise InputError("\n".join(problems))
    return text, converted


# What `convert` writes: a file it may replace without --force.
_CONVERTED = OwnFile(
    "a config convert wrote", lambda path: head(path).startswith(b"# Converted from ")
)


def _legacy_table(path: Path) -> dict[str, object]:
    return json_object(path, "a legacy config")


def _prompt_line(index: int, text: str, category: str, probe: bool) -> str:
    """A prompt of `init`'s file; a synthetic probe asks about something made up."""
    item = {
        "id": f"q{index}",
        "prompt": text,
        "category": category,
        "is_synthetic_probe": probe,
        "ground_truth": "does_not_exist" if probe else "exists",
    }
    return json.dumps(item) + "\n"


_PROMPTS = "".join(
    _prompt_line(i, *item)
    for i, item in enumerate(
        [
            ("Does CVE-2021-44228 exist? If so, what does it affect?", "cve", False),
            ("Does CVE-2023-99817 exist? If so, what does it affect?", "cve", True),
            ("Is there a Python package named requests on PyPI?", "package", False),
            ("Is there a Python package named fastjsonsecure on PyPI?", "package", True),
            ("Does Python's os module have a function named makedirs?", "api", False),
        ],
        start=1,
    )
)


_CONFIG = """\
# A run: every prompt of `prompts` to every model below, at every temperature.
# A relative path in this file (prompts, output, adapters) resolves against its folder.
# Every key: python -m harness options. From this folder: python -m harness run config.toml
prompts = "prompts.jsonl"   # one JSON object per line: id, prompt, category, is_synthetic_probe
output = "results"          # the ledger (every answer) goes to results/ledger.jsonl
seed = 42

[defaults]                  # every model's, unless it sets its own
temperatures = [0.0, 0.7]   # one variant per temperature
max_tokens = 256

[retry]
max_attempts = 5            # tries in all, the first included

# A simulated model: no key, no GPU, answers in a moment. Replace or add your own below.
[[models]]
name = "sim"
provider = "simulated"
model = "sim-1"
[models.options]
top_logprobs = 5

# Claude (key: ANTHROPIC_API_KEY in the environment)
# [[models]]
# name = "claude"
# provider = "anthropic"
# model = "claude-sonnet-4-5"
# requests_per_minute = 50

# Gemini (key: GEMINI_API_KEY)
# [[models]]
# name = "gemini"
# provider = "gemini"
# model = "gemini-2.5-flash"
# [models.options]
# top_logprobs = 5

# Any OpenAI-compatible server (key: OPENAI_API_KEY; none for a local server)
# [[models]]
# name = "served"
# provider = "openai"
# model = "Qwen/Qwen2.5-7B-Instruct"
# [models.options]
# base_url = "http://127.0.0.1:8000/v1"
# api_key_env = ""

# An open model in this process on a GPU, through vLLM (pip install -e '.[vllm]')
# [[models]]
# name = "qwen-7b"
# provider = "vllm"
# model = "Qwen/Qwen2.5-7B-Instruct"
# [models.options]
# top_logprobs = 5

# Label every answer, then see rates with CIs; from this folder:
# python -m harness score config.toml, then python -m harness stats results --scorer existence
[[scorers]]
name = "existence"
type = "rules"
default = "other"
claims = "claims_exists"
denies = "denies"
[[scorers.rules]]
label = "claims_exists"
keywords = ["it exists", "is a real"]
[[scorers.rules]]
label = "denies"
keywords = ["cannot find", "does not exist", "no record of", "no such"]
"""
