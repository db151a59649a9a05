"""The analysis verbs' work spread over this machine's cores: forked worker processes, each
reading its own stretch of one ledger file, their results collected in order.

Workers are forked (on Linux: no pickling of what they share, such as a million labels, and no
imports to repeat), so whatever the parent holds when they start is theirs to read. A task goes
to the first free worker over a pipe, its result comes back over another, and the caller gets
them in order. They read the ledger by `os.pread` on the parent's descriptor
(`harness.analysis.answers.Stretch`), never through a shared file offset, and count the bytes
they read, each in a number of its own, which the parent sums for its progress bar. They ignore
Ctrl-C: the parent gets it, stops them (SIGKILL), and exits as any verb does. A worker that dies
(killed, out of memory) ends the verb with one line, never a wait for a result that will not
come; a parent that dies (even by SIGKILL) takes its workers with it (Linux's
PR_SET_PDEATHSIG).

`make bench` (o), (p) and (r) measure each verb with its workers and in one process.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import multiprocessing
import os
import pickle
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for
from typing import Any

from harness.errors import InputError
from harness.ledger.sets import Advance

# Fewer latest records than this per worker and the work stays in one process: forking and
# collecting costs more than it saves.
MIN_RECORDS_PER_WORKER = 20_000
MAX_WORKERS = 8  # beyond this, reading the one file is the bottleneck
_POLL_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies

_shared: Any = None  # in a worker: what its parent gave it to share
_counter: Any = None  # in a worker: where it counts the bytes it read (the parent sums them)


class WorkerDied(InputError):
    """A worker process ended without giving its result."""


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(requested: int | None, records: int) -> int:
    """How many processes should read `records` latest records: `requested` (at most one per
    record, and MAX_WORKERS or one per core), or one per core up to MAX_WORKERS, fewer when the
    records are too few to be worth it; 1 is the parent alone (always, off Linux)."""
    if not sys.platform.startswith("linux"):  # fork is missing (Windows) or unsafe (macOS)
        return 1
    if requested is not None:
        return max(1, min(requested, records, max(MAX_WORKERS, available_cores())))
    return max(1, min(available_cores(), MAX_WORKERS, records // MIN_RECORDS_PER_WORKER))


def may_spread(requested: int | None) -> bool:
    """Whether work could go to worker processes at all (`requested`: as `worker_count`)."""
    return worker_count(requested, 1 << 62) > 1


def shared() -> Any:
    """In a worker: what `in_workers` was given to share."""
    return _shared


def report_read(count: int) -> None:
    """In a worker: `count` more bytes read (for the parent's progress bar)."""
    _counter.value += count


class Workers:
    """Forked worker processes (see `in_workers`): a task goes to the first that is free, one at
    a time each, so no pipe ever holds more than one task or one result."""

    def __init__(self, count: int, sharing: Any, advance: Advance | None) -> None:
        context = multiprocessing.get_context("fork")
        # Each worker counts its bytes in its own number, without a lock (a worker killed while
        # holding one would stop the parent reading them).
        self.counters = [context.RawValue("q", 0) for _ in range(count)]
        self.advance, self.reported = advance, 0
        self.queue: deque[tuple[int, tuple[Callable[..., Any], tuple[Any, ...]]]] = deque()
        self.results: dict[int, tuple[bool, Any]] = {}
        self.submitted = 0
        self.processes: list[Any] = []
        self.tasks: list[Connection] = []
        self.replies: list[Connection] = []
        for counter in self.counters:
            tasks_out, tasks_in = context.Pipe(duplex=False)
            replies_out, replies_in = context.Pipe(duplex=False)
            process = context.Process(
                target=_serve,
                args=(tasks_out, replies_in, sharing, counter, os.getpid()),
                daemon=True,
            )
            process.start()
            tasks_out.close()
            replies_in.close()
            self.processes.append(process)
            self.tasks.append(tasks_in)
            self.replies.append(replies_out)
        self.running: list[int | None] = [None] * count  # each worker's task, if it has one

    def submit(self, function: Callable[..., Any], *arguments: Any) -> Callable[[], Any]:
        """Call the module-level `function` with `arguments` in a worker; returns what waits for
        its result (raising its exception; WorkerDied when its worker died)."""
        task, self.submitted = self.submitted, self.submitted + 1
        self.queue.append((task, (function, arguments)))
        self._hand_out()
        reply: list[tuple[bool, Any]] = []  # kept: the caller may wait again

        def wait() -> Any:
            if not reply:
                reply.append(self._reply(task))
            ok, value = reply[0]
            if not ok:
                raise value
            return value

        return wait

    def map(self, function: Callable[..., Any], arguments: Iterable[tuple[Any, ...]]) -> list[Any]:
        """`function` called with each tuple of `arguments`, in the workers; the results in
        order."""
        waits = [self.submit(function, *args) for args in arguments]
        return [wait() for wait in waits]

    def _hand_out(self) -> None:
        for worker, task in enumerate(self.running):
            if task is None and self.queue:
                task, payload = self.queue.popleft()
                self.tasks[worker].send(payload)
                self.running[worker] = task

    def _reply(self, task: int) -> tuple[bool, Any]:
        while task not in self.results:
            busy = [(w, t) for w, t in enumerate(self.running) if t is not None]
            ready = wait_for([self.replies[w] for w, _ in busy], _POLL_SECONDS)
            for worker, answered in busy:
                if self.replies[worker] not in ready:
                    continue
                try:
                    self.results[answered] = self.replies[worker].recv()
                except EOFError:
                    raise self._died(worker) from None
                self.running[worker] = None
            for worker, running in enumerate(self.running):
                dead = self.processes[worker].exitcode is not None
                if running is not None and dead and not self.replies[worker].poll():
                    raise self._died(worker)
            self._hand_out()
            self._progress()
        self._progress()
        return self.results.pop(task)

    def _died(self, worker: int) -> WorkerDied:
        process = self.processes[worker]
        process.join(timeout=5)  # its pipe closes as it dies, a moment before it can be reaped
        code = process.exitcode
        how = (
            "still running"
            if code is None
            else f"signal {-code}"
            if code < 0
            else f"exit code {code}"
        )
        return WorkerDied(
            f"a worker process ended ({how}) before its work was done (out of memory?); "
            "try fewer --workers, or --workers 1"
        )

    def _progress(self) -> None:
        if self.advance is not None:
            total = sum(counter.value for counter in self.counters)
            if total > self.reported:
                self.advance(total - self.reported)
                self.reported = total

    def close(self, finished: bool) -> None:
        """End the workers: after their last task when `finished` and none is running, else at
        once (SIGKILL: a SIGTERM landing just after the fork, before a worker set its handlers,
        is caught by the parent's and lost); wait for them."""
        idle = finished and all(task is None for task in self.running)
        for worker, process in enumerate(self.processes):
            if idle:
                with contextlib.suppress(OSError):
                    self.tasks[worker].send(None)
            elif process.exitcode is None:
                process.kill()  # at once, wherever it is (SIGTERM may land before its handlers)
        for process in self.processes:
            process.join()
        for connection in (*self.tasks, *self.replies):
            connection.close()


@contextmanager
def in_workers(workers: int, sharing: Any, advance: Advance | None = None) -> Iterator[Workers]:
    """`workers` forked processes that see `sharing` (`shared()` in them), passing the bytes
    they report reading to `advance`. Leaving the block ends them."""
    pool = Workers(workers, sharing, advance)
    try:
        yield pool
    except BaseException:
        pool.close(finished=False)
        raise
    pool.close(finished=True)


def _serve(tasks: Any, replies: Any, sharing: Any, counter: Any, parent: int) -> None:
    """A worker: run each task received, send back its result or its exception, until told to
    end (None) or the parent's end of the pipe closes."""
    global _shared, _counter
    _shared, _counter = sharing, counter
    _worker_signals(parent)
    while True:
        try:
            task = tasks.recv()
        except EOFError:
            break
        if task is None:
            break
        function, arguments = task
        try:
            reply = (True, function(*arguments))
        except Exception as exc:  # the parent raises it
            reply = (False, exc)
        try:
            replies.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError):  # an exception that will not
            replies.send((False, RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}")))


def _worker_signals(parent: int) -> None:
    """Ctrl-C is the parent's to handle; SIGTERM ends a worker at once, whatever it waits on
    (the harness turns it into KeyboardInterrupt, which a worker blocked on a lock would never
    see); and the parent's death, even by SIGKILL, ends it too."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0 or os.getppid() != parent:
        os._exit(1)  # cannot be tied to its parent, or the parent is gone already


def split(positions: Sequence[int], parts: int) -> list[Sequence[int]]:
    """`positions` cut into `parts` runs of nearly equal length, in order."""
    size, extra = divmod(len(positions), parts)
    cuts = [0]
    for part in range(parts):
        cuts.append(cuts[-1] + size + (part < extra))
    return [positions[a:b] for a, b in itertools.pairwise(cuts)]
