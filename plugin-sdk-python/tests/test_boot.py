"""The boot script as the supervisor runs it (here on the test interpreter, with its
site-packages): sys.path, the entry as __main__, exit codes, and import monitoring
reported to the test broker.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plexichat_plugin._proto import broker_pb2 as pb
from plexichat_plugin.imports import MAX_ORIGIN_BYTES, Imported, ImportMonitor, _Reporter
from plexichat_plugin.testing import Served, TestBroker

SDK = Path(__file__).resolve().parent.parent
BOOT = SDK / "src" / "plexichat_boot.py"
IMPORTER = SDK / "tests" / "plugins" / "importer.py"
# Not -I -S: the test interpreter's grpclib lives in its site-packages. The bundle
# tests run the real `-I -S -B` on the host interpreter.
FLAGS = ["-E", "-s", "-B"]


def boot(entry: Path, fd: int | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd or SDK), "TMPDIR": "/tmp"}
    if fd is not None:
        env["PLEXICHAT_BROKER_FD"] = str(fd)
    return subprocess.Popen(
        [sys.executable, *FLAGS, str(BOOT), str(entry)],
        env=env,
        cwd=cwd,
        pass_fds=() if fd is None else (fd,),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def importer() -> Iterator[Served]:
    served = TestBroker("importer").serve()
    sock = served.connect()
    proc = boot(IMPORTER, sock.fileno())
    sock.close()
    served.wait_session()
    yield served
    served.shutdown()
    try:
        assert proc.wait(10) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        served.close()


def test_a_first_import_in_a_handler_is_reported_with_its_origin(importer: Served) -> None:
    importer.invoke("import-stmt")
    importer.wait_until(lambda: "colorsys" in importer.imported())
    origin = dict(importer.imports)["colorsys"]
    assert origin.endswith("/colorsys.py"), origin
    # json was loaded by the SDK before the hook: not the plugin's import.
    assert "json" not in importer.imported()
    sdk_own = [n for n in importer.imported() if n.startswith(("plexichat", "grpclib", "h2"))]
    assert sdk_own == [], sdk_own


def test_importlib_and_failed_attempts_are_reported_too(importer: Served) -> None:
    importer.invoke("import-module", "fractions")
    assert importer.invoke("import-missing").startswith(b"failed as expected")
    importer.wait_until(
        lambda: {"fractions", "plexichat_no_such_module"} <= set(importer.imported())
    )
    origins = dict(importer.imports)
    assert origins["fractions"].endswith("/fractions.py")
    # A failed attempt has no file.
    assert origins["plexichat_no_such_module"] == ""


def test_a_new_import_is_reported_within_a_fraction_of_a_second(importer: Served) -> None:
    start = time.monotonic()
    importer.invoke("import-module", "wave")
    importer.wait_until(lambda: "wave" in importer.imported(), timeout=2)
    assert time.monotonic() - start < 0.5


def test_hundreds_of_imports_go_in_reports_of_at_most_256(importer: Served) -> None:
    importer.invoke("import-many", "600")
    importer.wait_until(
        lambda: sum(n.startswith("plexichat_missing_") for n in importer.imported()) == 600
    )
    # The test broker refuses a report over 256 modules, as the broker does.
    assert importer.import_reports >= 3


def test_imports_before_the_handshake_are_reported_once_it_is_made(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "import wave  # before the broker connection exists\n"
        "from plexichat_plugin import Plugin\n"
        "Plugin().run()\n"
    )
    served = TestBroker("early").serve()
    sock = served.connect()
    proc = boot(tmp_path / "main.py", sock.fileno(), cwd=tmp_path)
    sock.close()
    try:
        served.wait_session()
        served.wait_until(lambda: "wave" in served.imported())
        assert dict(served.imports)["wave"].endswith("/wave.py")
    finally:
        served.shutdown()
        assert proc.wait(10) == 0
        served.close()


def test_without_the_boot_script_nothing_is_reported() -> None:
    from plexichat_plugin import Plugin, PluginContext

    plugin = Plugin()

    @plugin.command("load")
    def load(ctx: PluginContext, args: bytes) -> str:
        import this  # noqa: F401

        return "ok"

    with TestBroker("plain").start(plugin) as running:
        running.invoke("load")
        time.sleep(0.2)
        assert running.imports == [] and running.import_reports == 0


def test_the_entry_runs_as_main_with_the_package_and_vendor_on_the_path(
    tmp_path: Path,
) -> None:
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "vendored_lib.py").write_text("VALUE = 'from vendor'\n")
    (tmp_path / "helper.py").write_text("VALUE = 'from the package'\n")
    (tmp_path / "main.py").write_text(
        "import os, sys, helper, vendored_lib\n"
        "print(__name__, helper.VALUE, vendored_lib.VALUE)\n"
        "print(sys.argv)\n"
        "print(os.environ['PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION'],"
        " os.environ['MULTIDICT_NO_EXTENSIONS'])\n"
        "print(sys.path[:3])\n"
    )
    proc = boot(tmp_path / "main.py", cwd=tmp_path)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.decode().splitlines()
    assert lines[0] == "__main__ from the package from vendor"
    assert lines[1] == repr([str(tmp_path / "main.py")])
    assert lines[2] == "python 1"
    assert lines[3] == repr([str(SDK / "src"), str(tmp_path), str(tmp_path / "vendor")])


def test_an_exception_escaping_the_plugin_is_a_traceback_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("def f():\n    raise ValueError('boom')\nf()\n")
    proc = boot(tmp_path / "main.py", cwd=tmp_path)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    text = err.decode()
    assert "Traceback (most recent call last)" in text and "ValueError: boom" in text
    assert 'main.py", line 2, in f' in text


def test_sys_exit_keeps_its_code_and_no_broker_is_a_clear_failure(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("import sys\nsys.exit(7)\n")
    proc = boot(tmp_path / "main.py", cwd=tmp_path)
    proc.communicate(timeout=30)
    assert proc.returncode == 7
    hello = SDK / "examples" / "hello" / "main.py"
    proc = boot(hello, fd=None, cwd=tmp_path)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert b"NoBroker" in err and b"fd 3 is not open" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [([], "usage: plexichat_boot.py PLUGIN_ENTRY"), (["/nonexistent/main.py"], "does not exist")],
)
def test_a_bad_entry_is_named(argv: list[str], message: str) -> None:
    out = subprocess.run(
        [sys.executable, *FLAGS, str(BOOT), *argv], capture_output=True, timeout=30
    )
    assert out.returncode == 1
    assert message in out.stderr.decode()


# ---------------------------------------------------------------------------------------
# The monitor's parts, without an audit hook (one cannot be removed from pytest).


def test_the_hook_queues_only_new_names_and_never_raises() -> None:
    monitor = ImportMonitor(["json"])
    monitor.hook("import", ("json", None, [], [], []))
    monitor.hook("import", ("csv", None, [], [], []))
    monitor.hook("import", ())  # malformed: swallowed
    monitor.hook("open", ("/etc/passwd", "r", 0))
    found = monitor.collect({"json": None, "csv": None})
    assert [m.name for m in found] == ["csv"]
    assert monitor.collect({"json": None, "csv": None}) == []


def test_odd_sys_modules_entries_are_skipped_not_fatal() -> None:
    class Hostile:
        def __getattr__(self, name: str) -> object:
            raise RuntimeError("no attributes here")

    monitor = ImportMonitor([])
    odd: dict[Any, Any] = {42: None, "weird_mod": Hostile(), "fine": None}
    found = monitor.collect(odd)
    assert found == [Imported("weird_mod", ""), Imported("fine", "")]


def test_names_the_broker_refuses_are_set_aside_and_origins_cut_to_1024_bytes() -> None:
    class Module:
        __file__ = "/plugin/" + "é" * 1000 + ".py"

    monitor = ImportMonitor([])
    found = monitor.collect({"bad-name": None, "ok_mod": Module()})
    assert [m.name for m in found] == ["ok_mod"]
    assert len(found[0].origin.encode()) <= MAX_ORIGIN_BYTES
    assert found[0].origin.startswith("/plugin/é")
    assert monitor.take_unsendable() == ["bad-name"]


def test_a_rate_limited_report_is_kept_and_retried_a_refused_one_dropped() -> None:
    from grpclib.const import Status
    from grpclib.exceptions import GRPCError

    sent: list[int] = []
    answers: list[Exception | None] = [
        None,
        GRPCError(Status.RESOURCE_EXHAUSTED, "rate limit"),
        None,
        GRPCError(Status.INVALID_ARGUMENT, "bad"),
    ]
    warnings: list[str] = []

    async def send(request: pb.ReportImportsRequest) -> pb.ReportImportsResponse:
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        sent.append(len(request.modules))
        return pb.ReportImportsResponse(recorded=len(request.modules))

    async def scenario() -> _Reporter:
        reporter = _Reporter(send, warnings.append)
        await reporter.send([Imported(f"m{i}", "") for i in range(300)])
        assert sent == [256] and len(reporter.backlog) == 44
        await reporter.send([Imported("later", "")])
        return reporter

    reporter = asyncio.run(scenario())
    assert sent == [256, 45]
    assert reporter.backlog == []
    assert "delayed" in warnings[0]
    asyncio.run(_refused(send, warnings))
    assert "refused" in warnings[-1]


def test_a_broker_without_import_reports_is_told_once() -> None:
    from grpclib.const import Status
    from grpclib.exceptions import GRPCError

    calls: list[int] = []
    warnings: list[str] = []

    async def send(request: pb.ReportImportsRequest) -> pb.ReportImportsResponse:
        calls.append(len(request.modules))
        raise GRPCError(Status.UNIMPLEMENTED, "unknown method")

    async def scenario() -> None:
        reporter = _Reporter(send, warnings.append)
        await reporter.send([Imported("a", "")])
        await reporter.send([Imported("b", "")])
        assert reporter.unsupported and reporter.backlog == []

    asyncio.run(scenario())
    assert calls == [1] and len(warnings) == 1 and "does not take" in warnings[0]


async def _refused(send: object, warnings: list[str]) -> None:
    reporter = _Reporter(send, warnings.append)  # type: ignore[arg-type]
    await reporter.send([Imported("x", "")])
    assert reporter.backlog == []


def test_the_boot_script_is_importable_without_running() -> None:
    # The bundle byte-compiles it; importing must not start anything.
    out = subprocess.run(
        [sys.executable, "-c", "import plexichat_boot; print(plexichat_boot.USAGE)"],
        env={**os.environ, "PYTHONPATH": str(SDK / "src")},
        capture_output=True,
        timeout=30,
    )
    assert out.returncode == 0 and b"usage" in out.stdout
