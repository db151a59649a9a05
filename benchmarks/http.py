"""HTTP throughput: the harness through real providers against a fast loopback server, next to a
bare aiohttp client measured in the same run as the ceiling."""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import anyio

from benchmarks.http_server import free_port, serve_forever
from benchmarks.project import run_in_process, write_project

JOBS = 20_000


@contextmanager
def loopback_server(
    delay: float = 0.0, limited: float = 0.0, serve: Callable[..., None] | None = None
) -> Iterator[str]:
    """Start the benchmark server in its own process (answers after `delay` s, a `limited` share
    of random 429s with retry-after 1 s), or `serve(port)` in its place; yields its base URL."""
    port = free_port()
    target, args = (
        (serve, (port,)) if serve is not None else (serve_forever, (port, delay, limited))
    )
    process = multiprocessing.get_context("spawn").Process(target=target, args=args, daemon=True)
    process.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.join()


def bare_aiohttp_rate(url: str, concurrency: int, requests: int = JOBS) -> float:
    """Requests/s of a plain aiohttp client posting a chat completion, `concurrency` at a time."""
    body = {"model": "bench", "messages": [{"role": "user", "content": "Does x exist?"}]}

    async def main() -> float:
        remaining = iter(range(requests))
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                for _ in remaining:
                    async with session.post(f"{url}/v1/chat/completions", json=body) as response:
                        await response.json()

            started = time.perf_counter()
            async with anyio.create_task_group() as group:
                for _ in range(concurrency):
                    group.start_soon(worker)
            return requests / (time.perf_counter() - started)

    return anyio.run(main)


def provider_rate(root: Path, provider: str, url: str, concurrency: int) -> float:
    """Jobs/s of a whole harness run of JOBS jobs through `provider` at `concurrency`."""
    config = provider_project(root, provider, url, concurrency, JOBS)
    return JOBS / run_in_process(config)


def provider_project(
    root: Path, provider: str, url: str, concurrency: int, jobs: int, head: str = ""
) -> Path:
    """A project of `jobs` jobs through `provider` on the server at `url`; `head` goes before
    the [[models]] table (a [retry] table, say)."""
    options = {
        "openai": f'base_url = "{url}/v1"\napi_key_env = ""\nmax_connections = {concurrency}\n',
        "anthropic": f'base_url = "{url}"\napi_key_env = "BENCH_ANTHROPIC_KEY"\n',
    }[provider]
    body = head + (
        f'[[models]]\nname = "bench"\nprovider = "{provider}"\ntemperatures = [0.0]\n'
        f"max_concurrency = {concurrency}\n[models.options]\n{options}"
    )
    os.environ.setdefault("BENCH_ANTHROPIC_KEY", "bench-key")
    return write_project(root / f"{provider}-{concurrency}", jobs, body)
