"""The SDK bundle (`scripts/python-sdk-bundle.sh`) and plugins booted from it exactly
as the supervisor runs them: the host interpreter with `-I -S -B`, nothing but the
standard library and the bundle, against the test broker.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plexichat_plugin.testing import Served, TestBroker

SDK = Path(__file__).resolve().parent.parent
SCRIPT = SDK.parent / "scripts" / "python-sdk-bundle.sh"
INTERPRETER = "/usr/bin/python3"
COUNT = "SELECT COUNT(*) AS n FROM messages"

pytestmark = pytest.mark.skipif(
    not os.access(INTERPRETER, os.X_OK), reason=f"no host interpreter {INTERPRETER}"
)


def build(dest: Path, interpreter: str = INTERPRETER) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), str(dest), interpreter], capture_output=True, text=True, timeout=120
    )


def digest(root: Path) -> str:
    """What the supervisor pins: every path, its mode and its content's SHA-256."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        h.update(f"{path.relative_to(root)}\0{stat.S_IMODE(mode):o}\0".encode())
        if path.is_file():
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("bundle") / "sdk"
    out = build(dest)
    assert out.returncode == 0, out.stderr
    assert "no .so" in out.stdout and "files," in out.stdout
    return dest


def test_the_bundle_is_pure_python_compiled_and_0644(bundle: Path) -> None:
    assert (bundle / "plexichat_boot.py").is_file()
    for package in ("plexichat_plugin", "grpclib", "h2", "hpack", "hyperframe", "multidict"):
        assert (bundle / package / "__init__.py").is_file(), package
    assert (bundle / "google" / "protobuf" / "__init__.py").is_file()
    files = [p for p in bundle.rglob("*") if p.is_file()]
    suffixes = {p.suffix for p in files}
    assert suffixes == {".py", ".pyc", ".txt"}, suffixes
    assert not [p for p in bundle.rglob("*.dist-info")]
    assert not (bundle / "google" / "_upb").exists()
    for p in bundle.rglob("*"):
        want = 0o755 if p.is_dir() else 0o644
        assert stat.S_IMODE(p.lstat().st_mode) == want, p
    for source in bundle.rglob("*.py"):
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"
        assert pyc.is_file(), source
        # Flags 0b01: hash-based and unchecked, so the pinned pyc is what runs.
        assert pyc.read_bytes()[4:8] == b"\x01\x00\x00\x00", pyc
    versions = (bundle / "BUNDLE-VERSIONS.txt").read_text()
    assert "grpclib 0.4.9" in versions and "plexichat-plugin-sdk 0.1.0" in versions


def test_the_same_inputs_give_the_same_tree_and_a_rebuild_replaces_it(
    bundle: Path, tmp_path: Path
) -> None:
    again = tmp_path / "elsewhere"
    assert build(again).returncode == 0
    assert digest(again) == digest(bundle)
    (again / "stale.py").write_text("left over\n")
    start = time.monotonic()
    assert build(again).returncode == 0
    assert time.monotonic() - start < 30
    assert not (again / "stale.py").exists()
    assert digest(again) == digest(bundle)
    # Nothing of the build is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]


def test_a_failed_build_leaves_the_previous_bundle_alone(tmp_path: Path) -> None:
    dest = tmp_path / "sdk"
    dest.mkdir()
    (dest / "previous").write_text("still here\n")
    out = build(dest, interpreter="/bin/false")
    assert out.returncode != 0
    assert "is not a working Python 3.11+ interpreter" in out.stderr
    assert (dest / "previous").read_text() == "still here\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sdk"]
    out = build(dest, interpreter=str(tmp_path / "nope"))
    assert out.returncode != 0 and "is not an executable file" in out.stderr


def contract_env(fd: int, name: str, data: Path) -> dict[str, str]:
    """The environment the supervisor gives a Python plugin, and nothing else."""
    return {
        "PLEXICHAT_PLUGIN_NAME": name,
        "PLEXICHAT_PLUGIN_VERSION": "0.1.0",
        "PLEXICHAT_BROKER_FD": str(fd),
        "PLEXICHAT_DATA_DIR": str(data),
        "HOME": str(data),
        "TMPDIR": str(data),
    }


def boot_confined_style(
    served: Served, bundle: Path, package: Path, name: str, data: Path
) -> subprocess.Popen[bytes]:
    sock = served.connect()
    proc = subprocess.Popen(
        [INTERPRETER, "-I", "-S", "-B", str(bundle / "plexichat_boot.py"), str(package)],
        env=contract_env(sock.fileno(), name, data),
        cwd=data,
        pass_fds=(sock.fileno(),),
        stderr=subprocess.PIPE,
    )
    sock.close()
    served.wait_session()
    return proc


@pytest.fixture
def hello(bundle: Path, tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    package = tmp_path / "plugin"
    shutil.copytree(SDK / "examples" / "hello", package)
    shutil.copy(SDK / "tests" / "plugins" / "importer.py", package / "importer.py")
    data = tmp_path / "data"
    data.mkdir()
    served = (
        TestBroker("hello-py").grant("database_read", ["messages"]).rows(COUNT, [{"n": 5}]).serve()
    )
    proc = boot_confined_style(served, bundle, package / "main.py", "hello-py", data)
    yield served, package
    served.shutdown()
    try:
        assert proc.wait(10) == 0, proc.stderr.read() if proc.stderr else b""
    finally:
        if proc.poll() is None:
            proc.kill()
        served.close()


def test_hello_runs_from_the_bundle_under_isolated_mode(hello: tuple[Served, Path]) -> None:
    served, package = hello
    assert served.invoke("greet", "Ada") == b"Hello, Ada!"
    assert served.invoke("count") == b"5"
    assert served.publish("chat.message", "{}")
    served.wait_until(lambda: served.emitted)
    assert served.emitted[0][0] == "plugin.hello-py.greeted"
    # -B: the plugin's own code is compiled in memory, never written beside it.
    assert not list(package.rglob("__pycache__"))
    # hello imports nothing the SDK did not: an empty record, not a noisy one.
    assert served.imported() == []


def test_imports_are_reported_under_the_host_interpreter(bundle: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    served = TestBroker("importer").serve()
    importer = SDK / "tests" / "plugins" / "importer.py"
    package = tmp_path / "plugin"
    package.mkdir()
    shutil.copy(importer, package / "main.py")
    proc = boot_confined_style(served, bundle, package / "main.py", "importer", data)
    try:
        served.invoke("import-stmt")
        served.invoke("import-module", "fractions")
        served.wait_until(lambda: {"colorsys", "fractions"} <= set(served.imported()))
        origins = dict(served.imports)
        assert origins["colorsys"].startswith("/usr/lib/python3"), origins
        assert not [n for n in origins if n.startswith(("plexichat", "grpclib", "google"))]
    finally:
        served.shutdown()
        assert proc.wait(10) == 0
        served.close()
