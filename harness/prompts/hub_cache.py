"""`hf://datasets/ORG/NAME[@REVISION][/FOLDER]`: a hub dataset from the local Hugging Face cache.

The harness never downloads prompts. The cache keeps a dataset as `datasets--ORG--NAME/` with
`refs/<branch or tag>` files holding commits and `snapshots/<commit>/` folders holding the files
(`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`). A revision is a branch or
tag name (URL-encoded when it holds a slash: `refs%2Fconvert%2Fparquet`, as `huggingface_hub`
writes hf:// paths), or a commit, full or a unique prefix of a cached one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

from harness.errors import PromptsError

_URL = re.compile(r"hf://datasets/([\w.-]+/[\w.-]+)(?:@([^/]+))?(/.*)?$")
_REVISION = re.compile(r"[\w.-]+(/[\w.-]+)*")


def hub_snapshot(location: str) -> tuple[Path, str]:
    """The folder a hub location names inside its cached snapshot, and the snapshot's commit."""
    match = _URL.match(location)
    if match is None:
        raise PromptsError(f"{location}: expected hf://datasets/ORG/NAME[@REVISION][/FOLDER]")
    name, revision = match.group(1), unquote(match.group(2) or "main")
    if not _REVISION.fullmatch(revision) or ".." in revision.split("/"):
        raise PromptsError(f"{location}: {revision!r} is not a revision")
    cache = cache_folder() / f"datasets--{name.replace('/', '--')}"
    commit = _commit(cache, revision)
    if commit is None:
        cached = _cached_revisions(cache)
        download = f"hf download --repo-type dataset {name}"
        if revision != "main":
            download += f" --revision {revision}"
        held = f"; the cache holds {cached}" if cached else ""
        raise PromptsError(
            f"{location}: revision {revision} is not in the local Hugging Face cache ({cache})"
            f"{held}. The harness never downloads prompts: run `{download}` first, or point "
            "prompts at a folder saved with datasets' save_to_disk"
        )
    folder = cache / "snapshots" / commit / (match.group(3) or "").strip("/")
    if not folder.exists():
        raise PromptsError(f"{location}: no {folder.name} in the cached snapshot {commit[:12]}")
    return folder, commit


def cache_folder() -> Path:
    """Where the Hugging Face hub cache is."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or str(Path("~/.cache/huggingface").expanduser())
    return Path(home) / "hub"


def _commit(cache: Path, revision: str) -> str | None:
    """The cached snapshot a branch, tag or (partial) commit names; None when none is cached."""
    ref = cache / "refs" / revision
    if ref.is_file():
        commit = ref.read_text().strip()
        return commit if (cache / "snapshots" / commit).is_dir() else None
    snapshots = cache / "snapshots"
    matches = sorted(p.name for p in snapshots.glob(f"{revision}*")) if snapshots.is_dir() else []
    return matches[0] if len(matches) == 1 and re.fullmatch(r"[0-9a-f]{4,40}", revision) else None


def _cached_revisions(cache: Path) -> str:
    """What the cache holds of a dataset, for an error: its refs and commits, or its snapshots."""
    refs = cache / "refs"
    found = refs.rglob("*") if refs.is_dir() else ()
    names = sorted(
        f"{p.relative_to(refs)} ({p.read_text().strip()[:12]})" for p in found if p.is_file()
    )
    snapshots = cache / "snapshots"
    commits = sorted(p.name[:12] for p in snapshots.iterdir()) if snapshots.is_dir() else []
    return ", ".join(names) or (f"snapshots {', '.join(commits)}" if commits else "")
