"""`doctor CONFIG`: check a machine before a long run, as the legacy `validate_setup.py` did.

Dependencies of every provider the config names, the prompts file, keys (present or not, never
shown), a GPU when a local model is configured, free disk, an output directory a file can be
created in (tried, not assumed), and a ledger path that is a file. With `--probe`, one minimal
request per model (see `harness.run.preflight`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.api.provider import DeviceNeeds, Provider
from harness.config.models import ModelConfig
from harness.config.run_config import RunConfig
from harness.errors import InputError
from harness.fields import FieldError
from harness.ledger.lines import LEDGER_NAME
from harness.prompts.load import load_prompts
from harness.providers import REGISTRY, holds_device, installed_as, provider_class
from harness.providers.options import read_options
from harness.run.preflight import Target, probe_all
from harness.run.prepare import load_config_registering_secrets, refuse_moved_output
from harness.scrub import SECRETS, named_secrets, redact_urls
from harness.version import package_version

_MIN_FREE_GB = 1.0


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the doctor's report; `ok` is None for a check skipped."""

    area: str
    ok: bool | None
    detail: str


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """The checks, the config they read (None when it could not be read), and the models whose
    set-up passed, which `probes` can send a request to."""

    checks: list[Check]
    config: RunConfig | None = None
    targets: tuple[Target, ...] = ()


def diagnose(config_path: Path) -> Diagnosis:
    """Every check, in order; a broken config is one failed check, not an exception."""
    try:
        config = load_config_registering_secrets(config_path)
    except InputError as exc:
        return Diagnosis([Check("config", False, str(exc))])
    checks = [Check("config", True, f"{config_path}: {len(config.models)} model(s)")]
    checks += _prompts(config)
    targets = []
    local = False  # a model whose provider holds the device: the GPU is checked
    for index, model in enumerate(config.models):
        found, target, cls = _provider(index, model)
        checks += found
        targets += [target] if target else []
        # Its class's word, or its source's when its SDK is missing (no GPU may be why).
        local |= cls.holds_device if cls is not None else holds_device(model.provider)
    if local:
        gpu, first = _gpu()
        checks.append(gpu)
        for target in targets:
            checks += _memory(target, first)
    checks += _output(config)
    return Diagnosis(checks, config, tuple(targets))


async def probe_checks(diagnosis: Diagnosis, *, timeout: float | None, local: bool) -> list[Check]:
    """One request per model whose set-up passed (local models only when `local`); `timeout`
    defaults to the config's `[preflight] timeout`."""
    if diagnosis.config is None:
        return []
    timeout = timeout or diagnosis.config.preflight.timeout
    found = await probe_all(list(diagnosis.targets), timeout=timeout, local=local)
    hint = "; add --probe-local to load and probe it"
    return [
        Check(
            f"models[{p.target.index}] {p.target.model.name} probe",
            p.ok,
            p.detail + (hint if p.ok is None else ""),
        )
        for p in found
    ]


def report(checks: list[Check], console: Console) -> bool:
    """Print the checks as a table; True when none failed (a skipped check is no failure)."""
    table = Table(title="harness doctor")
    for column in ("check", "", "detail"):
        table.add_column(column)
    for check in checks:
        # Before rich can wrap a key across lines.
        detail = Text(redact_urls(SECRETS.scrub(check.detail)))
        table.add_row(check.area, _verdict(check.ok), detail)
    console.print(table)
    return all(check.ok is not False for check in checks)


def _verdict(ok: bool | None) -> Text:
    if ok is None:
        return Text("skip", style="yellow")
    return Text("ok", style="green") if ok else Text("FAIL", style="red")


def _prompts(config: RunConfig) -> list[Check]:
    try:
        prompts = load_prompts(config.prompts)
    except InputError as exc:
        return [Check("prompts", False, str(exc))]
    probes = sum(p.is_synthetic_probe for p in prompts)
    categories = len({p.category for p in prompts})
    detail = f"{config.prompts}: {len(prompts)} prompts, {categories} categories, {probes} probes"
    return [Check("prompts", True, detail)]


def _provider(
    index: int, model: ModelConfig
) -> tuple[list[Check], Target | None, type[Provider] | None]:
    """The provider's checks for one model, the model as a probe target if they passed, and
    its provider's class if it was loaded: only once its options are right, so that a mistake in
    them is told without importing the provider's SDK."""
    area = f"models[{index}] {model.name}"
    entry = REGISTRY.get(model.provider)
    try:
        options = read_options(model.provider, model.options, f"models[{index}].options")
        cls = provider_class(model.provider)
    except (InputError, FieldError) as exc:
        return [Check(area, False, str(exc))], None, None
    SECRETS.add(*named_secrets(options))
    package = entry.package if entry else ""
    version = package_version(package, *installed_as(package)) if package else None
    found = f"{model.provider} provider" + (f", {package} {version}" if version else "")
    try:
        options = cls.resolve(model.model_id, options)  # local models: where the weights are
    except InputError as exc:
        return [Check(area, True, found), Check(f"{area} weights", False, str(exc))], None, cls
    problems = cls.preflight(model.model_id, options)
    checks = [
        Check(area, True, found),
        Check(f"{area} set-up", not problems, "; ".join(problems) or cls.key_source(options)),
    ]
    return checks, None if problems else Target(index, model, cls, options), cls


@dataclasses.dataclass(frozen=True)
class _Gpu:
    """The first GPU: its memory in bytes and its compute capability (None: not told)."""

    memory: int
    capability: tuple[int, int] | None


def _gpu() -> tuple[Check, _Gpu | None]:
    """The GPU check, and the first GPU when there is one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        routes = "; ".join(entry.cpu_route for entry in REGISTRY.values() if entry.cpu_route)
        return Check("gpu", False, f"no GPU (nvidia-smi not found): {routes}"), None
    for fields in ("name,memory.total,compute_cap", "name,memory.total"):  # older drivers: 2
        result = subprocess.run(
            [smi, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        rows = [row.rsplit(",", 2) for row in result.stdout.strip().splitlines() if "," in row]
        if result.returncode == 0 and rows:
            break
    if result.returncode != 0 or not rows:
        return Check("gpu", False, result.stderr.strip() or "nvidia-smi found no GPU"), None
    rows = [row if len(row) == 3 else [*row, "[N/A]"] for row in rows]
    names = "; ".join(
        f"{name.strip()} ({float(mib) / 1024:,.0f} GiB, compute capability {cap.strip()})"
        for name, mib, cap in rows
    )
    _, mib, cap = rows[0]
    return Check("gpu", True, names), _Gpu(int(float(mib) * 2**20), _capability(cap))


def _capability(text: str) -> tuple[int, int] | None:
    """`8.0` as (8, 0); None for what is not one (`[N/A]`, an older driver)."""
    major, _, minor = text.strip().partition(".")
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None


def _memory(target: Target, gpu: _Gpu | None) -> list[Check]:
    """A local model's engine, its weights on disk and the GPU memory they need at the configured
    settings against what the GPU offers (the share its engine takes), the compute capability it
    needs against the GPU's, and the batches it would make; none for a model that needs no
    GPU."""
    needs = target.provider_cls.device_needs(target.model.model_id, target.options)
    if needs is None:
        return []
    area = f"models[{target.index}] {target.model.name}"
    needed, share = needs.needed, needs.share
    offered = None if gpu is None else int(gpu.memory * share)
    checks = [Check(f"{area} engine", True, needs.engine)] if needs.engine else []
    if gpu is not None and gpu.capability is not None and needs.capability > (0, 0):
        checks.append(_compute(area, needs, gpu.capability))
    if needs.batch is not None:
        size, why = needs.batch(offered, target.model.max_tokens)
        line = f"{size} requests per batch at max_tokens {target.model.max_tokens} ({why})"
        checks.append(Check(f"{area} batch", True, line))
    if needed is None:
        later = f"{needs.weights}: its size is known once downloaded"
        return [Check(f"{area} memory", None, later), *checks]
    need = f"{needs.weights}; needs about {needed / 2**30:,.1f} GiB"
    if offered is None:
        return [Check(f"{area} memory", None, f"{need}; no GPU to compare with"), *checks]
    verdict = f"{need} of the {offered / 2**30:,.1f} GiB offered ({share:.0%} of the GPU)"
    return [Check(f"{area} memory", needed <= offered, verdict), *checks]


def _compute(area: str, needs: DeviceNeeds, found: tuple[int, int]) -> Check:
    """Whether the GPU's compute capability is one the engine runs on at these settings."""
    have, want = ".".join(map(str, found)), ".".join(map(str, needs.capability))
    detail = f"compute capability {have}; {needs.capability_for} needs {want}"
    return Check(f"{area} compute", found >= needs.capability, detail)


def _output(config: RunConfig) -> list[Check]:
    output = config.output
    try:
        refuse_moved_output(config)
    except InputError as exc:
        return [Check("output", False, str(exc))]
    existing = output
    while not existing.exists():
        existing = existing.parent
    free_gb = shutil.disk_usage(existing).free / 1e9
    return [
        Check("disk", free_gb >= _MIN_FREE_GB, f"{free_gb:,.1f} GB free at {existing}"),
        _writable(output, existing),
        *_ledger_path(output / LEDGER_NAME),
    ]


def _writable(output: Path, existing: Path) -> Check:
    """Create and remove a file where the run will write (os.access says yes to root)."""
    if not existing.is_dir():
        return Check("output", False, f"{existing} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".harness-doctor-", dir=existing)
    except OSError as exc:
        return Check("output", False, f"{output} cannot be written: {exc.strerror} at {existing}")
    os.close(fd)
    os.unlink(probe)
    return Check("output", True, f"{output} can be written")


def _ledger_path(ledger: Path) -> list[Check]:
    """A failed check when something other than a file sits where the ledger goes."""
    if ledger.is_dir():
        return [Check("ledger", False, f"{ledger} is a directory, not a file")]
    if ledger.exists() and not ledger.is_file():
        return [Check("ledger", False, f"{ledger} is not a regular file")]
    return []
