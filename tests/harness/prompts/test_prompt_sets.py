"""Prompt sets as researchers keep them: Inspect and Hugging Face field names, a mapping table,
CSV/TSV, Parquet, datasets saved on disk, hub datasets in the local cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.config.run_config import load_config
from harness.errors import ConfigError
from harness.ledger.lines import read_ledger
from harness.prompts.load import load_prompts
from harness.prompts.sources import FieldMap, PromptSource
from tests.harness.prompts.test_prompts import error


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def source(path: Path | str, **fields) -> PromptSource:
    split = fields.pop("split", "")
    fmt = fields.pop("format", "auto")
    location = str(path) if str(path).startswith("hf://") else str(Path(path).resolve())
    return PromptSource(location, fmt, split, FieldMap(**fields))  # type: ignore[arg-type]


def test_an_inspect_dataset_with_chat_inputs_targets_and_metadata_loads(tmp_path):
    path = jsonl(
        tmp_path / "inspect.jsonl",
        [
            {
                "id": "cve-1",
                "input": "Does CVE-2021-44228 exist?",
                "target": "yes",
                "metadata": {"category": "cve", "is_synthetic_probe": False, "year": 2021},
            },
            {
                "id": "pkg-2",
                "input": [
                    {"role": "system", "content": "Answer yes or no."},
                    {"role": "user", "content": [{"type": "text", "text": "Is foo-bar on PyPI?"}]},
                ],
                "target": ["no", "No"],
                "choices": ["yes", "no"],
                "metadata": {"category": "package", "is_synthetic_probe": True},
            },
        ],
    )
    first, second = load_prompts(path)
    assert (first.id, first.category, first.is_synthetic_probe) == ("cve-1", "cve", False)
    assert [(m.role, m.content) for m in first.messages] == [("user", "Does CVE-2021-44228 exist?")]
    assert first.metadata == {"target": "yes", "year": 2021}
    assert [(m.role, m.content) for m in second.messages] == [
        ("system", "Answer yes or no."),
        ("user", "Is foo-bar on PyPI?"),
    ]
    assert (second.category, second.is_synthetic_probe) == ("package", True)
    assert second.metadata == {"target": ["no", "No"], "choices": ["yes", "no"]}


def test_an_inspect_image_part_is_refused_naming_the_line_and_part(tmp_path):
    path = jsonl(
        tmp_path / "i.jsonl",
        [{"id": "a", "input": [{"role": "user", "content": [{"type": "image", "image": "x"}]}]}],
    )
    assert error(path).endswith(
        "line 1: input[0].content[0]: only text parts are supported, got 'image'"
    )


@pytest.mark.parametrize(
    ("row", "text"),
    [
        ({"question": "What is 2+2?", "answer": "4"}, "What is 2+2?"),
        (
            {"instruction": "Translate.", "input": "Bonjour", "output": "Hello"},
            "Translate.\n\nBonjour",
        ),
        ({"instruction": "Say hi.", "input": "", "output": "hi"}, "Say hi."),
        ({"prompt": "p wins", "question": "kept as metadata"}, "p wins"),
        ({"messages": [{"role": "user", "content": "m wins"}], "input": "kept"}, "m wins"),
    ],
)
def test_hugging_face_field_names_follow_the_documented_precedence(tmp_path, row, text):
    (prompt,) = load_prompts(jsonl(tmp_path / "hf.jsonl", [row]))
    assert prompt.text == text
    assert prompt.id == "1"  # a set without ids numbers its rows, as Inspect does


def test_rows_without_ids_are_numbered_in_order_across_the_set(tmp_path):
    prompts = load_prompts(jsonl(tmp_path / "q.jsonl", [{"question": f"q{i}"} for i in range(3)]))
    assert [p.id for p in prompts] == ["1", "2", "3"]


def test_a_mapping_table_names_the_fields_and_keeps_the_target(tmp_path):
    jsonl(
        tmp_path / "custom.jsonl",
        [
            {"qid": 17, "body": "Is CVE-9 real?", "subject": "cve", "fake": True, "gold": "no"},
            {"qid": 18, "body": "Is numpy real?", "subject": "pkg", "fake": False, "gold": "yes"},
        ],
    )
    config = tmp_path / "run.toml"
    config.write_text(
        '[prompts]\npath = "custom.jsonl"\nid = "qid"\ntext = "body"\ncategory = "subject"\n'
        'probe = "fake"\ntarget = "gold"\n\n[[models]]\nname = "s"\nprovider = "simulated"\n'
    )
    first, second = load_prompts(load_config(config).prompts)
    assert (first.id, first.text, first.category, first.is_synthetic_probe) == (
        "17",
        "Is CVE-9 real?",
        "cve",
        True,
    )
    assert first.metadata == {"target": "no"} and second.metadata == {"target": "yes"}


def test_a_template_builds_the_prompt_from_fields_and_dotted_paths_reach_nested_ones(tmp_path):
    path = jsonl(
        tmp_path / "mc.jsonl",
        [{"id": "a", "q": "Pick one.", "choices": ["x", "y"], "info": {"topic": "t1"}}],
    )
    (prompt,) = load_prompts(
        source(path, template="{q}\nA) {choices[0]}\nB) {choices[1]}", category="info.topic")
    )
    assert prompt.text == "Pick one.\nA) x\nB) y" and prompt.category == "t1"
    assert prompt.metadata == {"info": {"topic": "t1"}}  # a template's fields are the prompt


def test_a_row_where_no_field_maps_names_the_fields_it_found(tmp_path):
    path = jsonl(tmp_path / "x.jsonl", [{"id": "a", "query": "hm", "gold": "b"}])
    message = error(path)
    assert message.startswith(f"{path}: line 1: no prompt field")
    assert message.endswith("fields found: id, query, gold")


def test_a_mapped_field_missing_from_a_row_names_the_row_and_field(tmp_path):
    path = jsonl(tmp_path / "x.jsonl", [{"id": "a", "q": "x"}, {"id": "b", "query": "y"}])
    assert error(source(path, text="q")).startswith(f"{path.resolve()}: line 2: q: no such field")


def test_a_template_naming_an_absent_field_names_the_row(tmp_path):
    path = jsonl(tmp_path / "x.jsonl", [{"id": "a", "q": "x"}])
    assert "line 1: template: no field 'question'" in error(source(path, template="{question}"))


CSV = (
    "\ufeffid,question,category,is_synthetic_probe,target\n"
    'c1,"Does CVE-2021-44228 exist?\nAnswer ""yes"" or ""no"".",cve,false,yes\n'
    "c2,Is foo-bar on PyPI?,package,TRUE,no\n"
    "\n"
    "c3,Is requests on PyPI?,package,,yes\n"
)


def test_a_csv_with_quoted_multiline_cells_and_a_bom_loads(tmp_path):
    path = tmp_path / "set.csv"
    path.write_text(CSV, encoding="utf-8")
    first, second, third = load_prompts(path)
    assert first.text == 'Does CVE-2021-44228 exist?\nAnswer "yes" or "no".'
    assert first.id == "c1" and first.metadata == {"target": "yes"}
    assert [p.is_synthetic_probe for p in (first, second, third)] == [False, True, False]
    assert third.category == "package"


def test_a_tsv_loads_by_its_extension(tmp_path):
    path = tmp_path / "set.tsv"
    path.write_text("id\tprompt\tcategory\np1\tHello there\tgreet\n")
    (prompt,) = load_prompts(path)
    assert (prompt.id, prompt.text, prompt.category) == ("p1", "Hello there", "greet")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("id,question\nc1,hi,extra\n", "row 2: 3 cells for 2 columns"),
        ("id,question,is_synthetic_probe\nc1,hi,true\nc2,ho,maybe\n", "row 3: is_synthetic_probe"),
        ("id,question,id\nc1,hi,c2\n", "line 1: header has column 'id' twice"),
        ('id,question\nc1,"never closed\n', "unexpected end of data"),
        ("id,question\nc1,\n", "row 2: question: empty text"),
    ],
)
def test_bad_csv_names_the_row_or_line(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    message = error(path)
    assert message.startswith(f"{path}: ") and expected in message


def test_parquet_loads_with_typed_columns_and_chat_turns(tmp_path):
    path = tmp_path / "set.parquet"
    table = pa.table(
        {
            "id": ["a", "b"],
            "input": [
                [{"role": "user", "content": "one"}],
                [{"role": "system", "content": "sys"}, {"role": "user", "content": "two"}],
            ],
            "category": ["x", "y"],
            "is_synthetic_probe": [False, True],
            "difficulty": [1, 3],
        }
    )
    pq.write_table(table, path, row_group_size=1)
    first, second = load_prompts(path)
    assert first.text == "one" and first.metadata == {"difficulty": 1}
    assert [m.role for m in second.messages] == ["system", "user"]
    assert second.is_synthetic_probe is True


def test_a_bad_parquet_row_is_named_by_its_number(tmp_path):
    path = tmp_path / "set.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "prompt": ["ok", " "]}), path)
    assert error(path) == f"{path}: row 2: prompt: empty text"


def test_the_format_comes_from_the_config_when_the_extension_does_not_say(tmp_path):
    path = jsonl(tmp_path / "set.txt", [{"id": "a", "prompt": "x"}])
    assert "unknown format" in error(path)
    assert load_prompts(source(path, format="jsonl"))[0].id == "a"


def test_a_dataset_saved_with_save_to_disk_loads_and_its_splits_are_chosen(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {"question": ["q1", "q2"], "answer": ["a1", "a2"], "subject": ["s", "t"]}
    datasets.Dataset.from_dict(rows).save_to_disk(tmp_path / "single")
    first, second = load_prompts(source(tmp_path / "single", category="subject"))
    assert (first.id, first.text, first.category, second.metadata) == (
        "1",
        "q1",
        "s",
        {"answer": "a2"},
    )
    both = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"question": ["t"]}),
            "test": datasets.Dataset.from_dict({"question": ["x", "y", "z"]}),
        }
    )
    both.save_to_disk(tmp_path / "dict")
    assert "2 splits (train, test): choose one with prompts.split" in error(tmp_path / "dict")
    assert [p.text for p in load_prompts(source(tmp_path / "dict", split="test"))] == list("xyz")
    assert "no split 'dev' (splits: train, test)" in error(source(tmp_path / "dict", split="dev"))


def hub_cache(root: Path, name: str, commit: str) -> Path:
    """A dataset laid out as the Hugging Face hub cache keeps it (refs/main -> snapshot)."""
    repo = root / f"datasets--{name.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    (snapshot / "data").mkdir(parents=True)
    pq.write_table(
        pa.table({"question": ["t1", "t2"]}), snapshot / "data" / "train-00000-of-00001.parquet"
    )
    pq.write_table(
        pa.table({"question": ["x1"]}), snapshot / "data" / "test-00000-of-00001.parquet"
    )
    return snapshot


def test_a_hub_dataset_is_read_from_the_local_cache_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    hub_cache(tmp_path / "hub", "org/bench", "c0ffee" * 6 + "abcd")
    location = "hf://datasets/org/bench"
    assert "choose one with prompts.split" in error(source(location))
    (prompt,) = load_prompts(source(location, split="test"))
    assert prompt.text == "x1"
    message = error(source("hf://datasets/org/absent", split="test"))
    assert "not in the local Hugging Face cache" in message and "never downloads" in message


def test_a_run_records_the_hub_commit_and_every_data_files_hash(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    commit = "c0ffee" * 6 + "abcd"
    snapshot = hub_cache(tmp_path / "hub", "org/bench", commit)
    config = tmp_path / "run.toml"
    config.write_text(
        f'output = "{tmp_path / "out"}"\n[prompts]\npath = "hf://datasets/org/bench"\n'
        'split = "train"\n\n[[models]]\nname = "s"\nprovider = "simulated"\n'
    )
    assert run_cli("run", config)[0] == 0
    (run,) = read_ledger(tmp_path / "out" / "ledger.jsonl").runs
    train = snapshot / "data" / "train-00000-of-00001.parquet"
    assert run["prompts"]["hub_commit"] == commit and run["prompts"]["split"] == "train"
    assert run["prompts"]["file_sha256"] == hashlib.sha256(train.read_bytes()).hexdigest()
    assert run["prompts"]["count"] == 2


def test_a_hub_name_written_as_a_path_says_how_to_name_it(tmp_path):
    assert "write hf://datasets/ORG/NAME" in error(tmp_path / "cais" / "mmlu")


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('format = "xlsx"', "prompts.format: expected one of"),
        ('text = "q"\ntemplate = "{q}"', "prompts.template: set either text or template"),
        ('template = "{q"', "prompts.template: not a valid template"),
        ('template = "no fields"', "prompts.template: names no field"),
        ('colour = "red"', "prompts.colour: unknown key"),
    ],
)
def test_a_bad_prompts_table_names_the_key(tmp_path, table, key):
    config = tmp_path / "run.toml"
    config.write_text(
        f'[prompts]\npath = "p.jsonl"\n{table}\n\n[[models]]\nname = "s"\nprovider = "simulated"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert str(caught.value).startswith(f"{config}: {key}")


def test_parquet_decimals_and_durations_are_kept_as_text_and_seconds(tmp_path):
    from datetime import timedelta
    from decimal import Decimal

    path = tmp_path / "typed.parquet"
    table = pa.table(
        {
            "id": ["a"],
            "question": ["q"],
            "price": pa.array([Decimal("1.50")], pa.decimal128(5, 2)),
            "took": pa.array([timedelta(seconds=90)], pa.duration("s")),
        }
    )
    pq.write_table(table, path)
    (prompt,) = load_prompts(path)
    assert prompt.metadata == {"price": "1.50", "took": 90.0}


def test_a_binary_column_is_refused_at_load_naming_the_row_and_column(tmp_path):
    path = tmp_path / "blob.parquet"
    pq.write_table(pa.table({"id": ["a"], "question": ["q"], "image": [b"\x89PNG"]}), path)
    assert error(path).startswith(f"{path}: row 1: image: binary data")
    assert error(path).endswith("add it to drop")
    (prompt,) = load_prompts(source(path, drop=("image",)))
    assert prompt.metadata == {}


def test_a_folder_of_several_configurations_asks_for_one(tmp_path):
    for config in ("main", "socratic"):
        (tmp_path / "gsm8k" / config).mkdir(parents=True)
        pq.write_table(
            pa.table({"question": [f"{config} q"]}),
            tmp_path / "gsm8k" / config / "test-00000-of-00001.parquet",
        )
    assert "2 configurations (main, socratic): add one to the path (gsm8k/main)" in error(
        tmp_path / "gsm8k"
    )
    assert [p.text for p in load_prompts(tmp_path / "gsm8k" / "main")] == ["main q"]


def test_a_folders_metadata_files_are_not_read_as_prompts(tmp_path):
    (tmp_path / "set" / "data").mkdir(parents=True)
    (tmp_path / "set" / "dataset_infos.json").write_text('{"default": {}}')
    (tmp_path / "set" / "notes.json").write_text('{"about": "no split named"}')
    jsonl(tmp_path / "set" / "data" / "test.jsonl", [{"question": "only me"}])
    assert [p.text for p in load_prompts(tmp_path / "set")] == ["only me"]


@pytest.mark.parametrize(
    ("template", "row", "message"),
    [
        ("{q}", {"q": None}, "template: {q} is empty (null)"),
        (
            "{input}",
            {"input": [{"role": "user", "content": "x"}]},
            "template: {input} is a list: index it",
        ),
        ("{c[3]}", {"c": ["a"]}, "template: {c[3]}: no such item"),
    ],
)
def test_a_template_never_sends_null_or_a_python_repr(tmp_path, template, row, message):
    path = jsonl(tmp_path / "t.jsonl", [{"id": "a", **row}])
    assert f"line 1: {message}" in error(source(path, template=template))


@pytest.mark.parametrize("template", ["{q.__class__}", "{q!r}", "{0}", "{q:{w}}"])
def test_a_template_with_attributes_conversions_or_positions_is_refused_at_load(tmp_path, template):
    config = tmp_path / "run.toml"
    config.write_text(
        f"[prompts]\npath = \"p.jsonl\"\ntemplate = '{template}'\n\n"
        '[[models]]\nname = "s"\nprovider = "simulated"\n'
    )
    with pytest.raises(ConfigError, match=r"prompts.template: .*write a field by name"):
        load_config(config)


def test_dotted_paths_index_lists(tmp_path):
    path = jsonl(tmp_path / "l.jsonl", [{"id": "a", "turns": ["first", "second"]}])
    assert load_prompts(source(path, text="turns.1"))[0].text == "second"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": True, "prompt": "x"}, "id: expected a string or an integer, got True"),
        (
            {"id": " a ", "prompt": "x"},
            "id: ' a ': no line breaks or spaces at its ends",
        ),
        ({"id": "a", "prompt": "x", "category": 2.5}, "category: expected a string, got 2.5"),
    ],
)
def test_ids_and_categories_of_the_wrong_kind_are_named(tmp_path, row, message):
    assert message in error(jsonl(tmp_path / "x.jsonl", [row]))


def test_integral_float_ids_and_integer_categories_read_as_text(tmp_path):
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"id": [1.0, 2.0], "question": ["a", "b"], "level": [3, 5]}), path)
    prompts = load_prompts(source(path, category="level"))
    assert [(p.id, p.category) for p in prompts] == [("1", "3"), ("2", "5")]


def test_class_labels_of_a_saved_dataset_arrive_as_names(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "question": datasets.Value("string"),
            "answer": datasets.ClassLabel(names=["A", "B"]),
            "subject": datasets.ClassLabel(names=["bio", "chem"]),
        }
    )
    rows = {"question": ["q1", "q2"], "answer": [1, 0], "subject": [0, 1]}
    saved = datasets.Dataset.from_dict(rows, features=features)
    saved.save_to_disk(tmp_path / "saved")
    saved.to_parquet(tmp_path / "hub.parquet")
    for where in (tmp_path / "saved", tmp_path / "hub.parquet"):
        first, second = load_prompts(source(where, category="subject", target="answer"))
        assert (first.category, first.metadata, second.category) == ("bio", {"target": "B"}, "chem")


def test_excel_csv_quirks_load_and_a_semicolon_file_says_what_it_is(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b'\xef\xbb\xbfid,question,,\r\nq1,"a\r\nb",,\r\n')
    (prompt,) = load_prompts(path)
    assert prompt.text == "a\r\nb" and prompt.metadata == {}
    semi = tmp_path / "semi.csv"
    semi.write_text("id;question\nq1;hi\n")
    assert "a semicolon-separated file?" in error(semi)


def test_tsv_cells_may_begin_with_a_quote_and_long_cells_load(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text('id\tquestion\nq1\t"Hello," she said\n')
    assert load_prompts(path)[0].text == '"Hello," she said'
    long = tmp_path / "long.csv"
    long.write_text("id,question\nq1," + "x" * 300_000 + "\n")
    assert len(load_prompts(long)[0].text) == 300_000


def test_json_with_a_byte_order_mark_loads_and_nan_gets_a_hint(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "prompt": "x"}\n')
    assert load_prompts(path)[0].id == "a"
    nan = tmp_path / "nan.jsonl"
    nan.write_text('{"id": "a", "prompt": "x", "score": NaN}\n')
    assert "NaN and Infinity are not JSON: write null" in error(nan)


def test_hub_revisions_by_branch_short_commit_and_encoded_ref(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    commit = "c0ffee" * 6 + "abcd"
    hub_cache(tmp_path / "hub", "org/bench", commit)
    repo = tmp_path / "hub" / "datasets--org--bench"
    (repo / "refs" / "refs" / "convert").mkdir(parents=True)
    (repo / "refs" / "refs" / "convert" / "parquet").write_text(commit)
    for revision in ("main", "c0ffeec0", "refs%2Fconvert%2Fparquet"):
        (prompt,) = load_prompts(source(f"hf://datasets/org/bench@{revision}", split="test"))
        assert prompt.text == "x1"
    message = error(source("hf://datasets/org/bench@v2", split="test"))
    assert "revision v2 is not in the local Hugging Face cache" in message
    assert "--revision v2" in message and "the cache holds main (c0ffeec0ffee)" in message
    assert "is not a revision" in error(source("hf://datasets/org/bench@..%2F..%2Fx"))
    assert "no nope in the cached snapshot" in error(source("hf://datasets/org/bench/nope"))


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('path = ""', "prompts.path: must not be empty"),
    ],
)
def test_an_empty_prompts_path_is_refused(tmp_path, table, key):
    config = tmp_path / "run.toml"
    config.write_text(f'[prompts]\n{table}\n\n[[models]]\nname = "s"\nprovider = "simulated"\n')
    with pytest.raises(ConfigError, match=key):
        load_config(config)


def test_a_split_for_a_single_file_is_refused(tmp_path):
    path = jsonl(tmp_path / "one.jsonl", [{"id": "a", "prompt": "x"}])
    assert "split 'test' given, but one file has no splits" in error(source(path, split="test"))


def test_prompts_on_the_command_line_may_name_a_hub_dataset(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    hub_cache(tmp_path / "hub", "org/bench", "c0ffee" * 6 + "abcd")
    config = tmp_path / "run.toml"
    config.write_text(
        f'prompts = "absent.jsonl"\noutput = "{tmp_path / "out"}"\n'
        '[[models]]\nname = "s"\nprovider = "simulated"\n'
    )
    code, _, err = run_cli(
        "run", config, "--prompts", "hf://datasets/org/bench/data/test-00000-of-00001.parquet"
    )
    assert code == 0, err
    assert read_ledger(tmp_path / "out" / "ledger.jsonl").records[0]["prompt_id"] == "1"


def test_a_template_asking_for_a_huge_width_is_refused_at_load_with_its_other_mistakes(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        '[prompts]\npath = "p.jsonl"\ntemplate = \'{question:>100000000000} {a!r} {b:.99999f} '
        '{c:zz}\'\n\n[[models]]\nname = "s"\nprovider = "simulated"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert message.startswith(f"{config}: prompts.template: {{question:>100000000000}}: a width")
    assert "{a!r}: write a field by name" in message  # every mistake in one error
    assert "{b:.99999f}: a precision over 10,000" in message
    assert "{c:zz}: not a format spec" in message
    assert "\n" not in message


def test_a_template_spec_the_value_cannot_take_names_the_row(tmp_path):
    path = jsonl(tmp_path / "t.jsonl", [{"id": "a", "q": "x"}, {"id": "b", "q": "text"}])
    assert load_prompts(source(path, template="{q:>3}|"))[0].text == "  x|"
    message = error(source(path, template="{q:d}"))
    assert message.startswith(f"{path.resolve()}: line 1: template: {{q:d}}: Unknown format code")


NOT_UTF8 = "\N{LATIN SMALL LETTER E WITH ACUTE}".encode("latin-1")  # b"\xe9", alone


@pytest.mark.parametrize(
    ("name", "head", "row"),
    [
        ("p.csv", b"id,question\n", b"q%d,what is %d?\n"),
        ("p.tsv", b"id\tquestion\n", b"q%d\twhat is %d?\n"),
        ("p.jsonl", b"", b'{"id": "q%d", "question": "what is %d?"}\n'),
    ],
)
def test_a_byte_that_is_not_utf8_is_reported_on_its_own_line(tmp_path, name, head, row):
    lines = [row % (i, i) for i in range(1, 400)]
    lines[49 if head else 50] = lines[49 if head else 50].replace(b"what", b"wh" + NOT_UTF8 + b"t")
    path = tmp_path / name
    path.write_bytes(head + b"".join(lines))
    assert error(path) == f"{path}: line 51: not UTF-8 text (invalid continuation byte)"


def test_a_json_document_with_a_byte_that_is_not_utf8_names_its_line(tmp_path):
    path = tmp_path / "p.json"
    rows = [b'  {"id": "q%d", "question": "what?"},\n' % i for i in range(60)]
    rows[49] = rows[49].replace(b"what", b"wh" + NOT_UTF8 + b"t")  # on line 51
    path.write_bytes(b"[\n" + b"".join(rows) + b'  {"id": "last", "question": "q"}\n]\n')
    assert error(path) == f"{path}: line 51: not UTF-8 text (invalid continuation byte)"


def test_a_config_with_a_byte_that_is_not_utf8_names_its_line(tmp_path):
    config = tmp_path / "run.toml"
    body = 'prompts = "p.jsonl"\n' + "# a comment\n" * 49 + "# caf\xe9\n"
    config.write_bytes(body.encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert str(caught.value) == f"{config}: line 51: not UTF-8 text (invalid continuation byte)"


@pytest.mark.parametrize(
    ("template", "fields"),
    [
        ("Category: {category}\n{prompt}", {}),
        ("{prompt} (probe: {is_synthetic_probe:>5})", {}),
        ("{category}: {prompt}", {"id": "category"}),
    ],
)
def test_a_field_read_by_the_template_may_also_be_the_category_flag_or_id(
    tmp_path, template, fields
):
    rows = [
        {"category": f"cve{i}", "is_synthetic_probe": i == 1, "prompt": f"Is {i} real?"}
        for i in range(2)
    ]
    path = jsonl(tmp_path / "p.jsonl", rows)
    prompts = load_prompts(PromptSource(str(path), fields=FieldMap(template=template, **fields)))
    assert [p.category for p in prompts] == ["cve0", "cve1"]
    assert [p.is_synthetic_probe for p in prompts] == [False, True]
    assert prompts[1].messages[-1].content == template.format(
        category="cve1", is_synthetic_probe=True, prompt="Is 1 real?"
    )
