"""Import monitoring: which modules the plugin loads, reported to the broker.

The boot script (`plexichat_boot.py`) installs a `sys.addaudithook` hook after the
SDK is imported; from then on every module loaded for the first time is queued and
the session sends it with ReportImports (audited as `plugin.import`). This is
observation, not a boundary: the plugin's own code runs in the same interpreter and
could stop the reporter. What makes `ctypes`, `socket` or `subprocess` harmless is the
kernel-level confinement around the interpreter.

Two sources, because neither sees everything: the `import` audit event names every
attempt the import statement makes (failed ones too) but not `importlib.import_module`;
new keys in `sys.modules` show those, in load order. The hook only appends to a deque
and wakes the loop: it never imports, raises or blocks.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from ._proto import broker_pb2 as pb

# The broker's limits (supervisor/src/broker/imports.rs): a report over them is
# refused whole, so the SDK keeps within them rather than lose a batch.
MAX_PER_REPORT = 256
MAX_NAME_BYTES = 256
MAX_ORIGIN_BYTES = 1024
# Imports come in bursts (a package pulls in its submodules): one report for a burst.
GATHER_SECONDS = 0.05
# Distinct names remembered; a plugin inventing names without end stops being
# recorded here instead of growing without bound (the broker keeps 1024 per run).
MAX_TRACKED = 16384
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


@dataclass(frozen=True)
class Imported:
    """One module as reported: its dotted name and the file it came from, or ""."""

    name: str
    origin: str


def is_module_name(name: str) -> bool:
    """What the broker accepts: ASCII dotted identifiers, at most 256 bytes."""
    return len(name) <= MAX_NAME_BYTES and _MODULE_NAME.match(name) is not None


def origin_of(module: object) -> str:
    """The module's file (a .py, .pyc or .so path), cut to what the broker takes."""
    try:
        path = getattr(module, "__file__", None)
    except Exception:
        # A module object of the plugin's own making may raise anything.
        return ""
    if not isinstance(path, str):
        return ""
    raw = path.replace("\0", "").encode("utf-8", errors="replace")[:MAX_ORIGIN_BYTES]
    return raw.decode("utf-8", errors="ignore")


class ImportMonitor:
    """What was loaded since `install()`, waiting to be reported."""

    def __init__(self, already_loaded: Iterable[str]) -> None:
        self._seen: set[str] = set(already_loaded)
        self._attempts: deque[str] = deque()
        self._wake: Callable[[], None] | None = None
        self._wake_pending = False
        self.untracked = 0
        """Names dropped past MAX_TRACKED."""
        self._unsendable: set[str] = set()
        self._said_untracked = False

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        """The audit hook. Runs on every audit event of every thread, so it tests the
        event name first and does nothing that could import, raise or block."""
        try:
            if event == "import":
                name = args[0]
                if isinstance(name, str) and name not in self._seen:
                    self._attempts.append(name)
                    self._poke()
            elif event == "exec" and getattr(args[0], "co_name", None) == "<module>":
                # A module body runs: importlib.import_module raises no `import`
                # event, so this is how its module is noticed promptly.
                self._poke()
        except Exception:
            pass

    def _poke(self) -> None:
        wake = self._wake
        if wake is not None and not self._wake_pending:
            self._wake_pending = True
            try:
                wake()
            except Exception:
                # The loop is closed: the process is ending, nothing left to report to.
                self._wake_pending = False

    def collect(self, modules: dict[str, Any]) -> list[Imported]:
        """What is new since the last call: failed or pending attempts named by the
        hook, then new `modules` keys in load order, each once."""
        self._wake_pending = False
        names: list[str] = []
        while self._attempts:
            names.append(self._attempts.popleft())
        # list() of a dict copies it without running Python code: other threads'
        # imports cannot change it halfway.
        names.extend(list(modules))
        out: list[Imported] = []
        for name in names:
            # sys.modules is the plugin's to mangle: a key that is no string is skipped.
            if not isinstance(name, str) or name in self._seen:
                continue
            if len(self._seen) >= MAX_TRACKED:
                self.untracked += 1
                continue
            self._seen.add(name)
            if not is_module_name(name):
                self._unsendable.add(name)
                continue
            out.append(Imported(name, origin_of(modules.get(name))))
        return out

    def take_unsendable(self) -> list[str]:
        """Names seen that the broker would refuse (not dotted identifiers)."""
        names, self._unsendable = sorted(self._unsendable), set()
        return names

    async def report_forever(
        self,
        send: Callable[[pb.ReportImportsRequest], Awaitable[pb.ReportImportsResponse]],
        warn: Callable[[str], None],
    ) -> None:
        """Reports what is queued now, then each new burst, until cancelled. A failed
        report is retried (rate limit, broker busy) or dropped (refused) and said on
        `warn`, never raised: monitoring must not take the plugin down."""
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(woken.set)

        self._wake = wake
        reporter = _Reporter(send, warn)
        try:
            while True:
                woken.clear()
                try:
                    await self._report_once(reporter, warn)
                except Exception as err:
                    # Whatever went wrong, the plugin goes on; reporting resumes.
                    warn(f"import report failed: {err}")
                    await asyncio.sleep(RETRY_MAX_SECONDS)
                    continue
                if reporter.backlog:
                    await asyncio.sleep(reporter.delay)
                    continue
                await woken.wait()
                await asyncio.sleep(GATHER_SECONDS)
        finally:
            self._wake = None

    async def _report_once(self, reporter: _Reporter, warn: Callable[[str], None]) -> None:
        batch = self.collect(sys.modules)
        for name in self.take_unsendable():
            warn(f"import of {name!r} not reported: not a dotted module name")
        if self.untracked and not self._said_untracked:
            self._said_untracked = True
            warn(f"over {MAX_TRACKED} module names: further imports are not reported")
        await reporter.send(batch)

    async def flush(
        self,
        send: Callable[[pb.ReportImportsRequest], Awaitable[pb.ReportImportsResponse]],
        warn: Callable[[str], None],
    ) -> None:
        """One last report (at shutdown), without retries."""
        await _Reporter(send, warn).send(self.collect(sys.modules))


class _Reporter:
    """Sends batches of at most MAX_PER_REPORT, keeping a backlog to retry."""

    def __init__(
        self,
        send: Callable[[pb.ReportImportsRequest], Awaitable[pb.ReportImportsResponse]],
        warn: Callable[[str], None],
    ) -> None:
        self._send = send
        self._warn = warn
        self.backlog: list[Imported] = []
        self.delay = RETRY_FIRST_SECONDS
        self._capped = False
        self.unsupported = False
        """The broker predates ReportImports: nothing more is sent."""

    async def send(self, batch: list[Imported]) -> None:
        if self.unsupported:
            return
        self.backlog.extend(batch)
        while self.backlog:
            chunk = self.backlog[:MAX_PER_REPORT]
            request = pb.ReportImportsRequest(
                modules=[pb.ImportedModule(name=m.name, origin=m.origin) for m in chunk]
            )
            try:
                answer = await self._send(request)
            except Exception as err:
                if isinstance(err, GRPCError) and err.status == Status.UNIMPLEMENTED:
                    self._warn("the broker does not take import reports; none are sent")
                    self.unsupported = True
                    self.backlog.clear()
                    return
                if _retryable(err):
                    self._warn(f"import report delayed {self.delay:.0f}s: {err}")
                    self.delay = min(self.delay * 2, RETRY_MAX_SECONDS)
                    return
                self._warn(f"import report of {len(chunk)} module(s) refused: {err}")
            else:
                if answer.over_cap and not self._capped:
                    self._capped = True
                    self._warn("the supervisor's per-run import record is full")
            del self.backlog[: len(chunk)]
            self.delay = RETRY_FIRST_SECONDS


def _retryable(err: Exception) -> bool:
    return isinstance(err, GRPCError) and err.status in (
        Status.RESOURCE_EXHAUSTED,
        Status.UNAVAILABLE,
    )


_active: ImportMonitor | None = None


def install() -> ImportMonitor:
    """Starts monitoring (the boot script does, once the SDK is loaded). An audit hook
    cannot be removed, so this is once per process."""
    global _active
    if _active is not None:
        raise RuntimeError("import monitoring is already installed in this process")
    monitor = ImportMonitor(list(sys.modules))
    sys.addaudithook(monitor.hook)
    _active = monitor
    return monitor


def active() -> ImportMonitor | None:
    """The installed monitor, or None (no boot script: tests, TestBroker)."""
    return _active
