"""The record browser's data: every latest record as columns (codes into short lists of names),
each prompt once, the kept token logprobs, serialized with orjson, scrubbed of secrets, gzipped
and base64-encoded for a `<script type="application/octet-stream">` block that the page inflates
with `DecompressionStream("gzip")`.

Layout (JSON):

    {"variants": [...], "categories": [...], "error_types": [...],
     "scorers": [{"name", "labels": [...]}],
     "prompts": {"id": [...], "category": [code], "probe": [0|1], "text": [str | null],
                 "metadata": [{field: text}]},
     "rows": {"variant", "prompt", "sample", "ok", "error", "retries", "tokens": [...],
              "latency": [seconds | null], "text": [answer or error message],
              "logprobs": [index into "logprobs" | -1], "labels": {scorer: [code | -1]}},
     "logprobs": [{"t": [token], "p": [logprob], "a": [[alternative]], "q": [[logprob]]}]}
"""

from __future__ import annotations

import base64
import gzip
from typing import Any

import numpy as np
import orjson

from harness.analysis.view_columns import AnswerColumns
from harness.report.read import LogprobSample, Rows
from harness.scrub import SECRETS


def payload(
    columns: AnswerColumns, rows: Rows, texts: list[str | None], sample: LogprobSample
) -> dict[str, Any]:
    """The browser's data as plain lists (see the module docstring)."""
    kept = sample.kept()
    order = sorted(kept)
    at = {row: n for n, row in enumerate(order)}
    first = np.asarray(rows.first_row, dtype=np.intp)
    latency = rows.latency
    return {
        "variants": columns.variants,
        "categories": columns.categories,
        "error_types": rows.error_types,
        "scorers": [{"name": name, "labels": labels} for name, labels in columns.labels.items()],
        "prompts": {
            "id": rows.prompts,
            "category": columns.category[first].tolist(),
            "probe": columns.probe[first].astype(int).tolist(),
            "text": texts,
            "metadata": rows.metadata,
        },
        "rows": {
            "variant": columns.variant.tolist(),
            "prompt": rows.prompt.tolist(),
            "sample": rows.sample.tolist(),
            "ok": columns.ok.astype(int).tolist(),
            "error": rows.error.tolist(),
            "retries": rows.retries.tolist(),
            "tokens": rows.output_tokens.tolist(),
            "latency": [None if np.isnan(x) else round(float(x), 3) for x in latency],
            "text": rows.text,
            "logprobs": [at.get(row, -1) for row in range(len(rows))],
            "labels": {name: codes.tolist() for name, codes in columns.label.items()},
        },
        "logprobs": [kept[row] for row in order],
    }


def packed(data: dict[str, Any]) -> str:
    """`data` as the page carries it: JSON, scrubbed, gzipped (mtime 0: the same data gives the
    same bytes), base64."""
    body = SECRETS.scrub_bytes(orjson.dumps(data))
    return base64.b64encode(gzip.compress(body, compresslevel=6, mtime=0)).decode("ascii")


def inline_json(data: Any) -> str:
    """`data` as JSON that can sit in a `<script type="application/json">` block: scrubbed, and
    `<`, `>` and `&` escaped so that no string in it can close the block."""
    body = SECRETS.scrub_bytes(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)).decode()
    return body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
