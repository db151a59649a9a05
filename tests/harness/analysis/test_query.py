"""`harness query`: one read-only SQL query over the latest answers and their scores; what it
counts, what it refuses, and the files it writes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis.query import checked, lock, preview
from harness.analysis.view import open_view
from harness.errors import InputError
from tests.harness.analysis.ledgers import answer, score, write_ledger, write_scores

COUNT_BY_VARIANT = (
    "SELECT variant, count(*) AS jobs, count(*) FILTER (WHERE status = 'ok') AS ok "
    "FROM answers GROUP BY variant ORDER BY variant"
)


@pytest.fixture
def output(tmp_path):
    """A run's output: a@t0 answers p0..p2 (p1 twice: the second answer is the latest), b@t0
    p0 and p1 (p1 failed), a damaged line in the middle (a third answer to a@t0's p2 and a
    record of its own, b@t0's p9: its checksum fails), and an `existence` score per answer."""
    out = tmp_path / "run"
    first = [answer("a@t0", f"p{i}") for i in range(3)]
    b = [answer("b@t0", "p0"), answer("b@t0", "p1", status="error", error={"type": "X"})]
    again = answer("a@t0", "p1", response="answered again")
    ledger = write_ledger(out / "ledger.jsonl", [*first, *b, again])
    lines = ledger.read_bytes().splitlines(keepends=True)
    spare = write_ledger(
        tmp_path / "spare.jsonl",
        [answer("a@t0", "p2", response="third"), answer("b@t0", "p9", response="nine")],
    ).read_bytes()
    damaged = [
        line.replace(b"third", b"th1rd").replace(b"nine", b"n1ne")
        for line in spare.splitlines(keepends=True)
    ]
    ledger.write_bytes(b"".join(lines[:3] + damaged + lines[3:]))
    labels = {"p0": "claims_exists", "p1": "denies", "p2": "claims_exists"}
    write_scores(
        out / "scores.jsonl",
        [
            score(first[1], "existence", "claims_exists"),  # given to the first answer: stale
            score(again, "existence", "denies", value=0.25),
            *(score(r, "existence", labels[r["prompt_id"]]) for r in (first[0], first[2])),
            score(b[0], "existence", "uncertain", value=1.0),
        ],
    )
    return out


def test_a_count_by_variant_counts_each_jobs_latest_record_and_skips_damaged_lines(output, run_cli):
    code, out, err = run_cli("query", output, COUNT_BY_VARIANT)
    assert (code, err) == (0, "")
    rows = [line.split() for line in out.splitlines()[:3]]
    assert rows == [["variant", "jobs", "ok"], ["a@t0", "3", "3"], ["b@t0", "2", "1"]]
    assert "skipped 2 unreadable line(s)" in out
    assert "2 row(s)" in out


def test_only_the_latest_answer_to_a_job_is_in_answers(output):
    with open_view(output / "ledger.jsonl", output / "scores.jsonl") as view:
        lock(view)
        table = run_query(
            view, "SELECT prompt_id, full_response FROM answers WHERE variant = 'a@t0' ORDER BY 1"
        )
    assert table.to_pylist() == [
        {"prompt_id": "p0", "full_response": "a@t0 on p0"},
        {"prompt_id": "p1", "full_response": "answered again"},
        {"prompt_id": "p2", "full_response": "a@t0 on p2"},
    ]


def test_scores_are_columns_of_answers_with_their_values(output):
    with open_view(output / "ledger.jsonl", output / "scores.jsonl") as view:
        lock(view)
        table = run_query(
            view,
            'SELECT key, "score.existence" AS label, "score.existence.value" AS value '
            "FROM answers ORDER BY key",
        )
    assert table.to_pylist() == [
        {"key": "a@t0|p0|0", "label": "claims_exists", "value": None},
        {"key": "a@t0|p1|0", "label": "denies", "value": 0.25},  # the stale score is gone
        {"key": "a@t0|p2|0", "label": "claims_exists", "value": None},
        {"key": "b@t0|p0|0", "label": "uncertain", "value": 1.0},
        {"key": "b@t0|p1|0", "label": None, "value": None},
    ]


def test_the_scores_table_holds_the_current_scores(output, run_cli):
    code, out, _ = run_cli(
        "query", output, "SELECT scorer, label, count(*) AS n FROM scores GROUP BY ALL ORDER BY ALL"
    )
    assert code == 0
    rows = [line.split() for line in out.splitlines()[1:4]]
    assert rows == [
        ["existence", "claims_exists", "2"],
        ["existence", "denies", "1"],
        ["existence", "uncertain", "1"],
    ]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("INSERT INTO scores VALUES ('k', 's', 'l', 1.0, NULL)", "INSERT is refused"),
        ("DELETE FROM latest", "DELETE is refused"),
        ("COPY (SELECT * FROM answers) TO 'leak.csv'", "COPY is refused"),
        ("ATTACH 'other.db'", "ATTACH is refused"),
        ("SET enable_external_access = true", "SET is refused"),
        ("PRAGMA version", "PRAGMA is refused"),
        ("INSTALL httpfs", "LOAD is refused"),
        ("EXPLAIN ANALYZE DELETE FROM latest", "EXPLAIN is refused"),
        ("PIVOT answers ON variant USING count(*)", "a PIVOT without its values) is refused"),
        ("SELECT 1; SELECT 2", "2 statements given"),
        ("SELECT 1; DROP TABLE latest", "2 statements given"),
        ("SELEC variant FROM answers", "Parser Error: syntax error"),
        ("SELECT nonesuch FROM answers", 'Binder Error: Referenced column "nonesuch" not found'),
        ("SELECT * FROM nonesuch", "Catalog Error"),
        ("   ", "the SQL is empty"),
    ],
)
def test_a_query_that_writes_or_fails_is_refused_in_one_line(output, run_cli, sql, expected):
    code, out, err = run_cli("query", output, sql)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: query: ")
    assert expected in err
    assert "Traceback" not in out + err
    assert not (output / "leak.csv").exists()


def test_a_pivot_naming_its_values_is_a_query(output, run_cli):
    sql = "PIVOT answers ON status IN ('ok', 'error') USING count(*) GROUP BY prompt_category"
    code, out, err = run_cli("query", output, sql)
    assert (code, err) == (0, "") and "row(s)" in out


def test_another_file_cannot_be_read_from_the_session(output, run_cli, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    for sql in (
        f"SELECT * FROM read_csv('{secret}')",
        f"SELECT * FROM read_text('{secret}')",
        f"SELECT * FROM '{secret}'",
    ):
        code, out, err = run_cli("query", output, sql)
        assert code == 2 and err.count("\n") == 1, sql
        assert "hunter2" not in out + err


def test_the_session_is_locked_once_the_view_is_built(output):
    with open_view(output / "ledger.jsonl", output / "scores.jsonl") as view:
        lock(view)
        with pytest.raises(Exception, match="locked"):
            view.connection.execute("SET enable_external_access = true")
        with pytest.raises(InputError, match="2 statements"):
            checked(view, "SELECT 1; SELECT 2")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda out: None, "no such ledger"),
        (lambda out: out.mkdir(), "no such ledger"),
        (lambda out: (out / "scores.jsonl").mkdir(parents=True), "scores.jsonl"),
    ],
    ids=["missing output", "folder without a ledger", "scores file not a file"],
)
def test_bad_inputs_exit_2_with_one_line(tmp_path, run_cli, make, expected):
    out = tmp_path / "nothing"
    make(out)
    if (out / "scores.jsonl").exists():
        write_ledger(out / "ledger.jsonl", [answer("a@t0", "p0")])
    code, stdout, err = run_cli("query", out, "SELECT count(*) FROM answers")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert expected.lower() in err.lower()
    assert "Traceback" not in stdout + err


def test_an_unreadable_scores_file_exits_2_with_one_line(output, run_cli, monkeypatch):
    real = Path.open

    def unreadable(path, *args, **kwargs):  # as for a file not ours (the tests run as root)
        if path.name == "scores.jsonl":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", unreadable)
    code, _, err = run_cli("query", output, "SELECT 1")
    assert code == 2
    assert err == f"error: {output / 'scores.jsonl'}: Permission denied\n"


def test_the_sql_may_come_from_a_file(output, run_cli, tmp_path):
    sql = tmp_path / "count.sql"
    sql.write_text(COUNT_BY_VARIANT + ";\n")
    code, out, _ = run_cli("query", output, "--sql", sql)
    assert code == 0 and out.splitlines()[1].split() == ["a@t0", "3", "3"]
    code, _, err = run_cli("query", output, "SELECT 1", "--sql", sql)
    assert code == 2 and "either inline" in err


def test_a_long_result_is_cut_saying_how_to_get_it_all(output, run_cli):
    code, out, _ = run_cli("query", output, "SELECT * FROM range(75) t(n)")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].strip() == "n" and lines[50].strip() == "49"
    assert "75 row(s); 25 not shown. All of them:" in lines[-1]
    assert "'SELECT * FROM range(75) t(n)' --format csv --to query.csv" in lines[-1]


@pytest.mark.parametrize(
    ("form", "name", "read"),
    [
        ("csv", "counts.csv", pd.read_csv),
        ("json", "counts.jsonl", lambda path: pd.read_json(path, lines=True)),
        ("parquet", "counts.parquet", pd.read_parquet),
    ],
)
def test_a_written_result_reads_back_as_the_table(output, run_cli, tmp_path, form, name, read):
    sql = (
        "SELECT variant, prompt_id, status, elapsed_seconds AS latency, "
        '"score.existence" AS label FROM answers ORDER BY key'
    )
    with open_view(output / "ledger.jsonl", output / "scores.jsonl") as view:
        lock(view)
        expected = run_query(view, sql).to_pandas()
    target = tmp_path / "out" / name
    code, out, err = run_cli("query", output, sql, "--format", form, "--to", target)
    assert (code, err) == (0, "")
    assert f"Wrote 5 row(s) to {target}" in out
    pd.testing.assert_frame_equal(read(target), expected, check_dtype=False)
    assert [p.name for p in target.parent.iterdir()] == [name]  # no temporary left


def test_a_written_result_never_replaces_a_ledger_or_scores_file(output, run_cli):
    for name in ("ledger.jsonl", "scores.jsonl"):
        before = (output / name).read_bytes()
        code, _, err = run_cli(
            "query", output, "SELECT 1", "--format", "csv", "--to", output / name, "--force"
        )
        assert code == 2 and "never replaces" in err
        assert (output / name).read_bytes() == before


def test_another_file_is_replaced_only_with_force_but_its_own_parquet_always(
    output, run_cli, tmp_path
):
    notes = tmp_path / "notes.csv"
    notes.write_text("mine\n")
    code, _, err = run_cli("query", output, "SELECT 1 AS n", "--format", "csv", "--to", notes)
    assert code == 2 and "--force" in err and notes.read_text() == "mine\n"
    assert "a CSV or JSON file carries no mark of the query that wrote it" in err
    assert (
        run_cli("query", output, "SELECT 1 AS n", "--format", "csv", "--to", notes, "--force")[0]
        == 0
    )
    assert pd.read_csv(notes)["n"].tolist() == [1]
    code, _, err = run_cli("query", output, "SELECT 2 AS n", "--format", "csv", "--to", notes)
    assert code == 2 and "no mark" in err  # its own CSV too: nothing in it says so
    parquet = tmp_path / "n.parquet"
    for n in (1, 2):
        args = ("query", output, f"SELECT {n} AS n", "--format", "parquet", "--to", parquet)
        assert run_cli(*args)[0] == 0
    assert pd.read_parquet(parquet)["n"].tolist() == [2]


def test_a_query_failing_while_written_leaves_no_file(output, run_cli, tmp_path):
    target = tmp_path / "bad.csv"
    code, _, err = run_cli(
        "query", output, "SELECT 'x'::INT FROM answers", "--format", "csv", "--to", target
    )
    assert code == 2 and "Conversion Error" in err
    assert list(tmp_path.glob("*bad.csv*")) == []


def test_format_and_to_go_together(output, run_cli, tmp_path):
    assert run_cli("query", output, "SELECT 1", "--format", "csv")[0] == 2
    assert run_cli("query", output, "SELECT 1", "--to", tmp_path / "x.csv")[0] == 2


@pytest.mark.slow
def test_the_docs_query_examples_run_on_the_demo(tmp_path, monkeypatch, run_cli):
    from tests.conftest import REPO

    monkeypatch.chdir(tmp_path)
    config = REPO / "configs" / "demo.toml"
    assert run_cli("run", config, "--output", "results/demo", "--limit", "10")[0] == 1
    assert run_cli("rerun", config, "--output", "results/demo", "--limit", "10")[0] == 0
    assert run_cli("score", config, "--output", "results/demo", "--scorers", "existence")[0] == 0
    page = (REPO / "docs" / "exports.md").read_text()
    section = page.split("## Asking your own questions: `query`")[1]
    blocks = re.findall(r"```bash\n(.*?)```", section.split("\n## ", 1)[0], flags=re.DOTALL)
    ran = 0
    for block in blocks:
        for files, command in _commands(block):
            for name, text in files.items():
                (tmp_path / name).write_text(text)
            words = shlex.split(command.replace("\\\n", " "))
            assert words[:3] == [".venv/bin/python", "-m", "harness"]
            code, out, err = run_cli(*words[3:])
            assert (code, err) == (0, ""), command
            assert "row(s)" in out
            ran += 1
    assert ran == 3


def _commands(block: str) -> list[tuple[dict[str, str], str]]:
    """A docs block's commands, each with the files its here-documents write before it."""
    found: list[tuple[dict[str, str], str]] = []
    files: dict[str, str] = {}
    lines = block.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("cat > ") and "<<'SQL'" in line:
            name = line.split()[2]
            end = lines.index("SQL\n", i)
            files[name] = "".join(lines[i + 1 : end])
            i = end + 1
            continue
        if line.startswith(".venv/bin/python"):
            command = line
            while not _closed(command):
                i += 1
                command += lines[i]
            found.append((files, command))
            files = {}
        i += 1
    return found


def _closed(command: str) -> bool:
    try:
        shlex.split(command)
    except ValueError:
        return False
    return True


def run_query(view, sql):
    """The whole result of one checked query, as an Arrow table."""
    return preview(view, sql, 1 << 30).rows
