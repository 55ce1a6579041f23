"""The SDK as a plugin process sees it: the example hello plugin run as a real child
process on an inherited broker socket, against a broker double.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from plexichat_plugin._proto import broker_pb2 as pb

from .fake_broker import FakeBroker, Running

SDK = Path(__file__).resolve().parent.parent
HELLO = SDK / "examples" / "hello" / "main.py"
PROBE = SDK / "tests" / "plugins" / "probe.py"


def start_plugin(running: Running, script: Path) -> subprocess.Popen[bytes]:
    sock = running.connect()
    env = {
        "PLEXICHAT_BROKER_FD": str(sock.fileno()),
        "PYTHONPATH": str(SDK / "src"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # As in the sandbox: no native extension modules, only CPython itself.
        "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python",
        "MULTIDICT_NO_EXTENSIONS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        pass_fds=(sock.fileno(),),
        stderr=subprocess.PIPE,
    )
    sock.close()
    return proc


@pytest.fixture
def hello(tmp_path: Path) -> Iterator[tuple[FakeBroker, subprocess.Popen[bytes]]]:
    broker = FakeBroker({"database_read": ["messages"]}, rows=[[42]])
    running = Running(broker, tmp_path / "broker.sock")
    proc = start_plugin(running, HELLO)
    broker.wait("Session")
    yield broker, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def invoke(broker: FakeBroker, command: str, args: bytes = b"") -> pb.CommandReply:
    broker.push(
        pb.HostMessage(
            invoke=pb.CommandInvocation(invocation_id=command, command=command, args=args)
        )
    )
    reply: pb.CommandReply = broker.wait("Reply")
    assert reply.invocation_id == command
    return reply


def test_handshake_subscribes_then_commands_are_answered(
    hello: tuple[FakeBroker, subprocess.Popen[bytes]],
) -> None:
    broker, _ = hello
    assert invoke(broker, "greet", b"Ada") == pb.CommandReply(
        invocation_id="greet", ok=True, output=b"Hello, Ada!"
    )
    assert invoke(broker, "count").output == b"42"
    missing = invoke(broker, "nope")
    assert not missing.ok and "count, greet" in missing.error


def test_events_are_handled_and_emitted_under_the_plugin_namespace(
    hello: tuple[FakeBroker, subprocess.Popen[bytes]],
) -> None:
    broker, _ = hello
    broker.push(pb.HostMessage(event=pb.Event(id="e1", topic="chat.message", payload=b"{}")))
    emitted = broker.wait("EmitEvent")
    assert emitted.topic == "plugin.hello-py.greeted"
    assert json.loads(emitted.payload) == {"reply_to": "e1", "text": "Hello from hello!"}
    log = broker.wait("Log")
    assert log.level == pb.LOG_LEVEL_INFO and "e1" in log.message


def test_the_sdk_runs_on_pure_python_protobuf_and_multidict(tmp_path: Path) -> None:
    broker = FakeBroker({}, rows=[])
    proc = start_plugin(Running(broker, tmp_path / "broker.sock"), PROBE)
    try:
        broker.wait("Session")
        reply = invoke(broker, "native-modules")
        assert reply.ok, reply.error
        # protobuf's check imports its upb module if present, but the pure-Python
        # implementation runs; multidict's C extension is not loaded at all.
        report = reply.output.decode()
        assert report.startswith("protobuf=python "), report
        assert "multidict" not in report, report
    finally:
        proc.kill()
        proc.wait(10)


def test_pings_are_answered_and_shutdown_ends_the_process(
    hello: tuple[FakeBroker, subprocess.Popen[bytes]],
) -> None:
    broker, proc = hello
    broker.push(pb.HostMessage(ping=pb.Ping(id=7)))
    assert broker.wait("Pong").id == 7
    broker.push(pb.HostMessage(shutdown=pb.Shutdown(grace_ms=2000, reason="test")))
    assert proc.wait(10) == 0


def test_a_denied_query_is_a_permission_error_naming_the_table(tmp_path: Path) -> None:
    broker = FakeBroker({"database_read": ["other"]}, rows=[])
    running = Running(broker, tmp_path / "broker.sock")
    proc = start_plugin(running, HELLO)
    try:
        broker.wait("Session")
        reply = invoke(broker, "count")
        assert not reply.ok
        assert "database_read is not granted for table `messages`" in reply.error
        # The same call succeeds when the grant covers the table (previous tests).
    finally:
        proc.kill()
        proc.wait(10)


def test_without_a_broker_the_plugin_says_so(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(HELLO)],
        env={"PYTHONPATH": str(SDK / "src"), "PLEXICHAT_BROKER_FD": "9"},
        capture_output=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert b"fd 9 is not open" in out.stderr
