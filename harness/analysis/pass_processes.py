"""The sealed passes over a view's files (`harness.analysis.sealed_pass`), each in a forked process
of its own where the files are large, so that none holds the GIL that the view's DuckDB threads
need for the measures they call into Python for.

In one process the pass held the GIL nearly all the time: DuckDB's reading of a 1,000,000-answer
ledger beside it took 11.1 s instead of 3.3 s, waiting on it at every call of the measures. Apart,
the ledger's pass, the scores file's and DuckDB's reading share the cores.

A child reads its files by their own paths (a file the view holds open, by the descriptor it
inherits), reports the bytes it has read through shared memory, and sends its result back whole
through a pipe (an exception that would not cross it as it is, as its text). A child that dies
without one is one line naming its files; the parent interrupted (Ctrl-C, or a SIGTERM, which
the harness takes as one) kills its children; a child whose parent died some other way stops at
its next report of bytes read. Passes run apart on Linux only (where forking a process beside
DuckDB's threads is safe, and a held file has a path); elsewhere, and for small files, they run
here, one after another.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from harness.errors import InputError
from harness.ledger.sets import Advance

# From how many bytes of files the passes go apart (a fork and its result's transfer cost about
# 20 ms; the passes over 32 MiB of lines, about 0.2 s).
APART_FROM = 32 << 20
_POLL_SECONDS = 0.1  # how often the children's progress is reported


@dataclass(frozen=True)
class SealedPass:
    """One pass: what it reads (named in messages) and the pass itself, given `advance`."""

    name: str
    run: Callable[[Advance | None], Any]  # the pass's result, sent back whole


@dataclass
class _Here:
    """The passes, each run here when its result is first asked for."""

    passes: Sequence[SealedPass]
    advance: Advance | None
    done: dict[int, Any] = field(default_factory=dict)
    apart = False

    def report_until(self, work: Future[Any]) -> None:
        """Nothing to report meanwhile: each pass reports as it runs."""

    def result(self, index: int) -> Any:
        """The result of the pass at `index`."""
        if index not in self.done:
            self.done[index] = self.passes[index].run(self.advance)
        return self.done[index]


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Within (in the main thread): SIGINT and SIGTERM are noted, not raised; leaving, one that
    came is raised as KeyboardInterrupt. Children and threads are started within, so that an
    interrupt never lands while one is half started: inside a fork's handlers (where Python
    drops it), in a child before it ignores interrupts, or between a thread's start and its
    pool's knowing of it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, frame: came.append(signum)) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if came:
        raise KeyboardInterrupt


def apart(size: int) -> bool:
    """Whether passes over `size` bytes run apart: from `APART_FROM`, on Linux."""
    return size >= APART_FROM and sys.platform == "linux"


@contextmanager
def run_passes(
    passes: Sequence[SealedPass], size: int, advance: Advance | None
) -> Iterator[_Here | _Apart]:
    """Within: the passes started, and what gives the result of one (`result`), waiting for it.
    They run apart (see the module docstring) when `apart(size)` (`size`: the bytes they
    read); else here, each when its result is first asked for."""
    if not apart(size):
        yield _Here(passes, advance)
        return
    with ExitStack() as stack:
        answers: list[Connection] = []  # every child's, closed in the children started later
        yield _Apart([_Child.started(one, stack, answers) for one in passes], advance)


@dataclass
class _Child:
    """A pass's process, the pipe it answers on, and the bytes it has read so far."""

    name: str
    process: multiprocessing.process.BaseProcess
    answer: Connection
    read: ctypes.c_longlong

    @classmethod
    def started(cls, one: SealedPass, stack: ExitStack, answers: list[Connection]) -> _Child:
        """`one` started in a child of its own, given the ends the parent reads its children's
        answers at (`answers`, its own added) to close: a child whose parent died finds its pipe
        closed, never full and waited on."""
        context = multiprocessing.get_context("fork")
        answer, send = context.Pipe(duplex=False)
        answers.append(answer)
        read = context.RawValue(ctypes.c_longlong, 0)
        process = context.Process(target=_child, args=(one, send, list(answers), read), daemon=True)
        with warnings.catch_warnings():  # Python 3.12+ warns of forking beside threads: the
            # child calls nothing that another thread may hold a lock of
            warnings.simplefilter("ignore", DeprecationWarning)
            process.start()
        send.close()
        stack.callback(_ended, process)
        stack.callback(answer.close)
        return cls(one.name, process, answer, read)


@dataclass
class _Apart:
    """The children, their answers so far, and the bytes reported read."""

    children: list[_Child]
    advance: Advance | None
    answers: dict[int, Any] = field(default_factory=dict)
    reported: int = 0
    apart = True

    def result(self, index: int) -> Any:
        """The answer of the child at `index`, waited for, reporting the bytes the children read
        meanwhile (another child's answer that comes first is kept)."""
        while index not in self.answers:
            self._wait()
        return self.answers[index]

    def report_until(self, work: Future[Any]) -> None:
        """Report the bytes the children read until `work` is done (or every child is)."""
        while not work.done() and len(self.answers) < len(self.children):
            self._wait()

    def _wait(self) -> None:
        """Take the answers that come within a moment; report the bytes read."""
        children = self.children
        waiting = [child.answer for i, child in enumerate(children) if i not in self.answers]
        for ready in wait(waiting, _POLL_SECONDS):
            at = next(i for i, child in enumerate(children) if child.answer is ready)
            self.answers[at] = _answer(children[at])
        read = sum(child.read.value for child in children)
        if self.advance is not None and read > self.reported:
            self.advance(read - self.reported)
            self.reported = read


def _answer(child: _Child) -> Any:
    try:
        failed, result = child.answer.recv()
    except (EOFError, OSError):
        child.process.join(1)  # ending: its pipe is closed
        code = child.process.exitcode
        raise InputError(
            f"{child.name}: the process reading it ended without its result "
            f"(exit code {code if code is not None else 'unknown'}; out of memory?)"
        ) from None
    if failed:
        raise result
    return result


def _child(
    one: SealedPass, send: Connection, answers: list[Connection], read: ctypes.c_longlong
) -> None:
    """A child's work: the pass, its result (or the exception that ended it) sent back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent, interrupted, ends its children
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for answer in answers:
        answer.close()
    parent = os.getppid()

    def advance(count: int) -> None:
        if os.getppid() != parent:  # the parent died: nobody waits for the result
            os._exit(1)
        read.value += count

    try:
        outcome = (False, one.run(advance))
    except Exception as exc:  # sent to the parent, which raises it
        outcome = (True, _portable(exc))
    try:
        send.send(outcome)
    except OSError:  # the parent died: nobody reads the pipe
        os._exit(1)


def _portable(exc: Exception) -> Exception:
    """The exception, or its text where it would not cross the pipe as it is."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # its class takes other arguments than it keeps, say
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _ended(process: multiprocessing.process.BaseProcess) -> None:
    """A child stopped: it has sent its answer, or its parent was interrupted or failed."""
    if process.is_alive():
        process.kill()
    process.join()
