"""The options that pick prompts, and the records of those prompts in a ledger (`--category`,
`--ids`, `--probes-only`, `--no-probes`; `--sample` and `--limit` where a verb has them), and the
`Selection` they make."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import InputError
from harness.prompts.selection import Selection


def selection_of(args: argparse.Namespace) -> Selection:
    """The prompts (or records) a verb's filters pick; InputError for an empty `--category`."""
    categories = [c.strip() for given in args.category for c in given.split(",") if c.strip()]
    if args.category and not categories:
        raise InputError("--category: no category named (an empty value would run them all)")
    return Selection(
        categories=tuple(dict.fromkeys(categories)),
        ids_file=args.ids,
        probes=args.probes,
        sample=getattr(args, "sample", None),
        limit=getattr(args, "limit", None),
    )


def add_filters(parser: argparse.ArgumentParser) -> None:
    """The filters a ledger's records can be read by as well as a prompt set."""
    parser.add_argument(
        "--category",
        action="append",
        default=[],
        metavar="A,B",
        help="only prompts of these categories (comma-separated, repeatable)",
    )
    parser.add_argument("--ids", type=Path, metavar="FILE", help="only the ids in FILE (1/line)")
    probes = parser.add_mutually_exclusive_group()
    probes.add_argument(
        "--probes-only", dest="probes", action="store_const", const=True, help="only probes"
    )
    probes.add_argument(
        "--no-probes", dest="probes", action="store_const", const=False, help="no probes"
    )
