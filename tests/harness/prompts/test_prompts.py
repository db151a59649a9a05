"""Prompt files: the legacy JSON shapes, JSONL, and errors that point at the item or line."""

from __future__ import annotations

import json

import pytest

from harness.errors import PromptsError
from harness.prompts.load import load_prompts
from tests.conftest import REPO


def write(tmp_path, name: str, content) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def error(path) -> str:
    with pytest.raises(PromptsError) as caught:
        load_prompts(path)
    return str(caught.value)


def test_legacy_object_keeps_flags_and_metadata(tmp_path):
    path = write(
        tmp_path,
        "p.json",
        {
            "version": 2,
            "prompts": [
                {
                    "id": "cve_1",
                    "prompt": "Does CVE-2021-44228 exist?",
                    "category": "cve_existence",
                    "is_synthetic_probe": False,
                    "expected": "yes",
                },
                {"prompt_id": 7, "text": "Is foo-bar on PyPI?", "is_synthetic_probe": True},
            ],
        },
    )
    first, second = load_prompts(path)
    assert (first.id, first.category, first.is_synthetic_probe) == ("cve_1", "cve_existence", False)
    assert first.text == "Does CVE-2021-44228 exist?" and first.metadata == {"expected": "yes"}
    assert (second.id, second.is_synthetic_probe, second.category) == ("7", True, "")


def test_bare_list_with_chat_messages_and_system(tmp_path):
    path = write(
        tmp_path,
        "p.json",
        [
            {
                "id": "a",
                "system": "Be terse.",
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"},
                    {"role": "user", "content": "Is CVE-1 real?"},
                ],
            }
        ],
    )
    (prompt,) = load_prompts(path)
    assert [m.role for m in prompt.messages] == ["system", "user", "assistant", "user"]


def test_jsonl_reads_one_item_per_line_and_skips_blank_lines(tmp_path):
    path = write(tmp_path, "p.jsonl", '{"id": "a", "prompt": "x"}\n\n{"id": "b", "prompt": "y"}\n')
    assert [p.id for p in load_prompts(path)] == ["a", "b"]


def test_bundled_sample_mixes_real_items_and_probes_across_categories():
    prompts = load_prompts(REPO / "configs" / "prompts" / "security_sample.json")
    categories = {p.category for p in prompts}
    assert 40 <= len(prompts) <= 60 and 4 <= len(categories) <= 6
    for category in categories:
        flags = {p.is_synthetic_probe for p in prompts if p.category == category}
        assert flags == {True, False}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            [{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}],
            "prompts[1]: duplicate id 'a' (first at prompts[0])",
        ),
        ([{"id": "a", "prompt": "x"}, {"prompt": "y"}], "prompts[1]: missing id"),
        ([{"prompt": "x"}, {"id": "b", "prompt": "y"}], "prompts[1]: id: this row has an id"),
        ([{"id": "a", "prompt": "  "}], "prompts[0]: prompt: empty text"),
        ([{"id": "a", "answer": "x"}], "prompts[0]: no prompt field (expected one of messages"),
        (
            [{"id": "a", "messages": [{"role": "robot", "content": "x"}]}],
            "prompts[0]: messages[0].role",
        ),
        (
            [{"id": "a", "prompt": "x", "is_synthetic_probe": "yes"}],
            "prompts[0]: is_synthetic_probe: expected true or false",
        ),
        ({"items": []}, 'expected a list of prompts or an object with a "prompts" list'),
        ([], "no prompts"),
        (
            '{"prompts": [\n  {"id": "a", "prompt": "x"}\n  {"id": "b"}]}',
            "line 3, column 3: invalid JSON",
        ),
    ],
)
def test_bad_json_prompts_say_which_item_or_position(tmp_path, content, expected):
    path = write(tmp_path, "p.json", content)
    message = error(path)
    assert message.startswith(f"{path}: ") and expected in message


def test_bad_jsonl_line_says_line_and_column(tmp_path):
    path = write(tmp_path, "p.jsonl", '{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": }\n')
    assert "line 2, column 23: invalid JSON" in error(path)


def test_missing_prompts_file_is_reported(tmp_path):
    assert error(tmp_path / "absent.json").endswith("absent.json: no such file or folder")
