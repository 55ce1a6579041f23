"""The SDK as a plugin process sees it: the example hello plugin run as a real child
process on an inherited broker socket, against the test broker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from plexichat_plugin import PluginError
from plexichat_plugin.testing import Served, TestBroker

SDK = Path(__file__).resolve().parent.parent
HELLO = SDK / "examples" / "hello" / "main.py"
PROBE = SDK / "tests" / "plugins" / "probe.py"
COUNT = "SELECT COUNT(*) AS n FROM messages"


def start_plugin(served: Served, script: Path) -> subprocess.Popen[bytes]:
    """`script` as a child whose broker fd is a fresh connection to `served`."""
    sock = served.connect()
    env = {
        "PLEXICHAT_BROKER_FD": str(sock.fileno()),
        "PYTHONPATH": str(SDK / "src"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # As in the sandbox: no native extension modules, only CPython itself.
        "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python",
        "MULTIDICT_NO_EXTENSIONS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=env, pass_fds=(sock.fileno(),), stderr=subprocess.PIPE
    )
    sock.close()
    served.wait_session()
    return proc


@pytest.fixture
def running(request: pytest.FixtureRequest) -> Iterator[tuple[Served, subprocess.Popen[bytes]]]:
    """hello (or the script a test names with `@pytest.mark.parametrize`) as a child."""
    broker, script = getattr(request, "param", (None, HELLO))
    broker = broker or TestBroker("hello-py").grant("database_read", ["messages"])
    broker.rows(COUNT, [{"n": 42}])
    served = broker.serve()
    proc = start_plugin(served, script)
    yield served, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    served.close()


def test_handshake_subscribes_then_commands_are_answered(
    running: tuple[Served, subprocess.Popen[bytes]],
) -> None:
    served, _ = running
    assert served.subscriptions == ["chat.message"]
    assert served.invoke("greet", b"Ada") == b"Hello, Ada!"
    assert served.invoke("count") == b"42"
    with pytest.raises(PluginError, match="this plugin has: count, greet"):
        served.invoke("nope")


def test_events_are_handled_and_emitted_under_the_plugin_namespace(
    running: tuple[Served, subprocess.Popen[bytes]],
) -> None:
    served, _ = running
    assert served.publish("chat.message", "{}")
    served.wait_until(lambda: served.emitted and served.logs)
    topic, payload = served.emitted[0]
    assert topic == "plugin.hello-py.greeted"
    assert json.loads(payload)["text"] == "Hello from hello!"
    level, message = served.logs[0]
    assert level == "LOG_LEVEL_INFO" and "greeted chat message" in message


def test_pings_are_answered_and_shutdown_ends_the_process(
    running: tuple[Served, subprocess.Popen[bytes]],
) -> None:
    served, proc = running
    served.ping(7)
    served.shutdown()
    assert proc.wait(10) == 0


@pytest.mark.parametrize(
    "running", [(TestBroker("hello-py").grant("database_read", ["other"]), HELLO)], indirect=True
)
def test_a_denied_query_is_the_brokers_refusal_naming_the_table(
    running: tuple[Served, subprocess.Popen[bytes]],
) -> None:
    served, _ = running
    # The grant exists (has_permission is true) but does not cover `messages`; with
    # it covering the table the same command answers (the tests above).
    with pytest.raises(PluginError, match="database_read is not granted for table `messages`"):
        served.invoke("count")


@pytest.mark.parametrize("running", [(TestBroker("probe"), PROBE)], indirect=True)
def test_the_sdk_runs_on_pure_python_protobuf_and_multidict(
    running: tuple[Served, subprocess.Popen[bytes]],
) -> None:
    served, _ = running
    # protobuf's check imports its upb module if present, but the pure-Python
    # implementation runs; multidict's C extension is not loaded at all.
    report = served.invoke("native-modules").decode()
    assert report.startswith("protobuf=python "), report
    assert "multidict" not in report, report


def test_without_a_broker_the_plugin_says_so() -> None:
    out = subprocess.run(
        [sys.executable, str(HELLO)],
        env={"PYTHONPATH": str(SDK / "src"), "PLEXICHAT_BROKER_FD": "9"},
        capture_output=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert b"fd 9 is not open" in out.stderr
