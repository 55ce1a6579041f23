"""The hostile Python plugin (tests/python-plugins/hostile) run unconfined against the
test broker, booted as the supervisor boots it: every command answers well-formed
verdict JSON, the twins work, the attacks that would hurt the host refuse to run,
and its imports are reported. Whether the sandbox stops the attacks is the
supervisor's end-to-end test; this one keeps the plugin honest.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plexichat_plugin.testing import Served, TestBroker

SDK = Path(__file__).resolve().parent.parent
HOSTILE = SDK.parent / "tests" / "python-plugins" / "hostile"
BOOT = SDK / "src" / "plexichat_boot.py"


def load_commands() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("hostile_py", HOSTILE / "main.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    commands: dict[str, Any] = module.COMMANDS
    return commands


# The broker fd number the child was given (its fd table mirrors the parent's).
fds: list[int] = []


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("data")
    served = TestBroker("hostile-py").serve()
    sock = served.connect()
    env = {
        "PLEXICHAT_PLUGIN_NAME": "hostile-py",
        "PLEXICHAT_PLUGIN_VERSION": "0.1.0",
        "PLEXICHAT_BROKER_FD": str(sock.fileno()),
        "PLEXICHAT_DATA_DIR": str(data),
        "HOME": str(data),
        "TMPDIR": str(data),
    }
    proc = subprocess.Popen(
        [sys.executable, "-E", "-s", "-B", str(BOOT), str(HOSTILE / "main.py")],
        env=env,
        cwd=data,
        pass_fds=(sock.fileno(),),
        stdin=subprocess.DEVNULL,
    )
    fds.append(sock.fileno())
    sock.close()
    served.wait_session()
    yield served
    served.shutdown()
    try:
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        served.close()


def run(served: Served, command: str, arg: str = "") -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(served.invoke(command, arg))
    return reply


def well_formed_attack(v: dict[str, Any], attack: str) -> None:
    assert v["attack"] == attack, v
    assert isinstance(v["blocked"], bool) and isinstance(v["detail"], str), v
    if v.get("skipped"):
        return
    assert v["steps"], v
    for s in v["steps"]:
        assert set(s) == {"step", "ok", "errno", "errno_name", "detail"}, s
        assert s["ok"] or isinstance(s["errno"], int) or "inconclusive" in s["detail"], s
    failed = [s for s in v["steps"] if not s["ok"]]
    if failed and failed[0]["errno"] is not None:
        assert v["errno"] == failed[0]["errno"], v


def test_the_manifest_declares_every_command_and_the_limits() -> None:
    manifest = tomllib.loads((HOSTILE / "plugin.toml").read_text())
    assert manifest["name"] == "hostile-py"
    assert (manifest["runtime"], manifest["entry"]) == ("python3", "main.py")
    assert manifest["resources"] == {"cpu": 0.2, "memory": "96MiB", "pids": 16}
    assert "permissions" not in manifest
    declared = [c["name"] for c in manifest["commands"]]
    assert declared == list(load_commands())


def test_the_import_probe_is_observed_by_the_broker(hostile: Served) -> None:
    v = run(hostile, "import-probe")
    assert v["attack"] == "import-probe" and v["blocked"] is False
    # The SDK loaded json and socket, asyncio subprocess; ctypes is the plugin's own.
    assert "ctypes" in v["new"], v
    assert {"json", "socket", "subprocess"} <= set(v["already_loaded"]), v
    hostile.wait_until(lambda: {"ctypes", "_ctypes"} <= set(hostile.imported()))
    assert "subprocess" not in hostile.imported()


def test_the_twins_work_unconfined(hostile: Served) -> None:
    for command, arg in [
        ("data-write", ""),
        ("data-read", ""),
        ("tmp-write", ""),
        ("thread", ""),
        ("alloc", "8"),
        ("fork-ok", ""),
        ("ctypes-ok", ""),
        ("socketpair", ""),
    ]:
        v = run(hostile, command, arg)
        assert v["twin"] == command and v["ok"] is True, v


def test_the_attacks_answer_verdicts_and_harmful_ones_refuse_unconfined(
    hostile: Served, tmp_path: Path
) -> None:
    readable = run(hostile, "read-file", "/etc/hostname")
    well_formed_attack(readable, "read-file")
    missing = run(hostile, "read-file", "/nonexistent/x")
    well_formed_attack(missing, "read-file")
    assert missing["blocked"] and missing["errno_name"] == "ENOENT", missing
    target = tmp_path / "evil"
    written = run(hostile, "write-file", str(target))
    well_formed_attack(written, "write-file")
    assert not written["blocked"] and not target.exists(), written  # cleaned up
    for family in ["inet", "inet6", "unix", "netlink", "packet", "vsock"]:
        v = run(hostile, "socket", family)
        well_formed_attack(v, "socket")
        assert v["family"] == family
    sub = run(hostile, "subprocess")
    well_formed_attack(sub, "subprocess")
    assert not sub["blocked"] and len(sub["steps"]) == 2, sub
    for name in ["ptrace", "bpf", "unshare", "io_uring_setup", "tiocsti"]:
        v = run(hostile, "ctypes", name)
        well_formed_attack(v, "ctypes")
        assert v["syscall"] == name
    # /dev/null is no tty: ENOTTY reached the driver, which is not blocked.
    tiocsti = run(hostile, "ctypes", "tiocsti")
    assert not tiocsti["blocked"], tiocsti
    small = run(hostile, "balloon", "8")
    well_formed_attack(small, "balloon")
    assert small["touched_mib"] == 8 and not small["blocked"]


def test_attacks_that_would_hurt_the_host_are_not_attempted_unconfined(hostile: Served) -> None:
    for command, arg in [("fork-bomb", ""), ("balloon", "512"), ("ctypes", "mount")]:
        v = run(hostile, command, arg)
        assert v["skipped"] is True and v["blocked"] is False, v
        assert "not confined" in v["detail"], v


def test_bad_arguments_are_named_and_never_crash_it(hostile: Served) -> None:
    for command, arg, wanted in [
        ("socket", "bogus", "inet, inet6, unix, netlink, packet, vsock"),
        ("ctypes", "reboot", "a syscall: mount"),
        ("balloon", "lots", "a size in MiB"),
        ("read-file", "", "a path"),
    ]:
        v = run(hostile, command, arg)
        assert v["blocked"] is False and f"expected {wanted}" in v["detail"], v
    v = run(hostile, "alloc", "-3")
    assert v["ok"] is False and "at least 1" in v["detail"], v
    assert run(hostile, "fds")["fds"][:3] == [0, 1, 2]


def test_it_starts_with_only_stdio_and_the_broker_fd(hostile: Served) -> None:
    assert run(hostile, "fds")["fds"] == [0, 1, 2, fds[-1]]
