"""The Python bench client (bench/main.py) as the `bench-py` plugin: booted as the
supervisor boots it, against the test broker, it answers all three rows in one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from plexichat_plugin import PluginError
from plexichat_plugin.testing import TestBroker

SDK = Path(__file__).resolve().parent.parent
BOOT = SDK / "src" / "plexichat_boot.py"
BENCH = SDK / "bench" / "main.py"


def test_bench_calls_times_the_sdk_beside_a_bare_grpclib_echo(tmp_path: Path) -> None:
    served = TestBroker("bench-py").serve()
    sock = served.connect()
    proc = subprocess.Popen(
        [sys.executable, "-E", "-s", "-B", str(BOOT), str(BENCH)],
        env={"PLEXICHAT_BROKER_FD": str(sock.fileno()), "HOME": str(tmp_path)},
        cwd=tmp_path,
        pass_fds=(sock.fileno(),),
    )
    sock.close()
    try:
        served.wait_session()
        v = json.loads(served.invoke("bench-calls", "200 2"))
        assert (v["calls"], v["in_flight"]) == (200, 2)
        for row in ("sdk_call", "bare_echo", "bridge_echo"):
            p50, p99, rate = (v[f"{row}_us_p50"], v[f"{row}_us_p99"], v[f"{row}_per_sec"])
            assert 0 < p50 <= p99 and rate > 0, (row, v)
        assert v["echo_server"] == "process"
        assert v["sdk_call"] == 'has_permission("file_read")'
        with pytest.raises(PluginError, match="IN_FLIGHT 1-8"):
            served.invoke("bench-calls", "10 99")
        with pytest.raises(PluginError, match="takes `CALLS"):
            served.invoke("bench-calls", "many")
    finally:
        served.shutdown()
        assert proc.wait(10) == 0
        served.close()
