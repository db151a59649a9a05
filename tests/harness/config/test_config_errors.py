"""A config with several mistakes is told all of them in one run: a line each, naming the file
and the key path, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from harness.errors import InputError
from harness.fields import FieldError, from_table, option
from harness.run.prepare import prepare
from tests.conftest import REPO, SIMPLE_MODEL, write_config

# Five mistakes in five places: the top level, [retry], two models, a scorer.
FIVE_MISTAKES = """
colour = "blue"

[retry]
max_attempts = 0

[[models]]
name = "a"
provider = "simulated"
temperature = 0.5

[[models]]
name = "b"
provider = "simulated"
top_p = 3

[[scorers]]
name = "s"
type = "bogus"
"""


@pytest.mark.slow
def test_a_config_with_five_mistakes_gets_five_lines_exit_2_and_nothing_written(tmp_path):
    config = write_config(tmp_path, FIVE_MISTAKES)
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert [line.split(": ")[2] for line in lines] == [
        "colour",
        "models[0].temperature",
        "models[1].top_p",
        "retry.max_attempts",
        "scorers[0].type",
    ]
    assert all(line.startswith(f"error: {config}: ") for line in lines)
    assert not (tmp_path / "out").exists()


@dataclass(frozen=True)
class _Table:
    count: int = option(1, "a count", min=1, max=10)
    name: str = option("x", "a name")
    sizes: tuple[int, ...] = option((), "sizes", min=0, max=5)


def test_a_table_reports_every_wrong_key_at_once():
    table = {"count": 0, "name": 3, "sizes": [1, 9, "a"], "colour": 1, "shade": 2}
    with pytest.raises(FieldError) as caught:
        from_table(_Table, table, "t")
    assert [str(error) for error in caught.value.errors] == [
        "t.colour: unknown key (expected one of: count, name, sizes)",
        "t.shade: unknown key (expected one of: count, name, sizes)",
        "t.count: must be >= 1, got 0",
        "t.name: expected a string, got 3",
        't.sizes[2]: expected an integer, got "a"',
    ]
    assert str(caught.value).splitlines() == [str(e) for e in caught.value.errors]


def test_an_unset_variable_and_other_mistakes_are_told_together(tmp_path):
    body = SIMPLE_MODEL.replace('name = "sim"', 'name = "${UNSET_FOR_TEST}"') + "top_p = 2\n"
    config = write_config(tmp_path, body)
    with pytest.raises(InputError) as caught:
        prepare(config)
    assert [line.split(": ", 1)[1] for line in str(caught.value).splitlines()] == [
        "models[0].name: environment variable UNSET_FOR_TEST is not set",
        "models[0].top_p: must be <= 1, got 2.0",
    ]


def test_every_wrong_provider_option_of_a_model_is_told(tmp_path):
    body = SIMPLE_MODEL + "[models.options]\nlatency = 3\noutput_tokens = 0\n"
    with pytest.raises(InputError) as caught:
        prepare(write_config(tmp_path, body))
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "models[0].options.latency",
        "models[0].options.output_tokens",
    ]


def test_a_judge_of_a_wrong_model_entry_is_not_told_again(tmp_path):
    body = SIMPLE_MODEL.replace("max_concurrency = 4", "max_concurrency = 0") + (
        '[[scorers]]\nname = "j"\ntype = "judge"\nmodel = "sim"\ntemplate = "{response}"\n'
        'labels = ["yes", "no"]\n'
    )
    with pytest.raises(InputError) as caught:
        prepare(write_config(tmp_path, body))
    assert str(caught.value).splitlines() == [
        f"{tmp_path / 'run.toml'}: models[0].max_concurrency: must be >= 1, got 0"
    ]
