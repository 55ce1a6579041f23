"""The hostile Python plugin, twin of `tests/src/bin/hostile.rs`: each attack command
tries one escape the way a Python plugin would (open, socket.socket, subprocess,
os.fork, a bytearray balloon, ctypes syscalls) and replies with the kernel's verdict
as the Rust one does:

    {"attack", "blocked", "errno", "errno_name", "detail", "steps": [{"step", "ok",
     "errno", "errno_name", "detail"}]}

and each twin command the legitimate version (`{"twin", "ok", "detail", "steps"}`).
Attacks that would hurt the host run only when the plugin is visibly confined (pid 1
of its own pid namespace, not root, a broker fd): unconfined they answer
`"skipped": true`. `ctypes` is imported only by the commands that use it, so
`import-probe` can show it loaded first (asyncio has already loaded `subprocess`,
the SDK `socket` and `json`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from plexichat_plugin import Plugin, PluginContext

Json = dict[str, Any]
MIB = 1 << 20
# The largest balloon tried unconfined, where no cgroup would stop it.
UNCONFINED_BALLOON_MIB = 64
FORK_BOMB_LIMIT = 10_000
# x86_64 and aarch64 syscall numbers: ctypes calls them by number.
SYSCALLS = {
    "x86_64": {
        "getpid": 39,
        "ioctl": 16,
        "ptrace": 101,
        "mount": 165,
        "umount2": 166,
        "unshare": 272,
        "bpf": 321,
        "io_uring_setup": 425,
    },
    "aarch64": {
        "getpid": 172,
        "ioctl": 29,
        "ptrace": 117,
        "mount": 40,
        "umount2": 39,
        "unshare": 97,
        "bpf": 280,
        "io_uring_setup": 425,
    },
}
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
CLONE_NEWUSER = 0x10000000
PTRACE_TRACEME, PTRACE_ATTACH, PTRACE_DETACH = 0, 16, 17
BPF_PROG_LOAD = 5


def _open_fds() -> list[int]:
    fds = []
    for fd in range(256):
        try:
            fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            continue
        fds.append(fd)
    return fds


# Before the SDK adopts the broker socket and asyncio opens its own descriptors.
START_FDS = _open_fds()

# ---------------------------------------------------------------------------------------
# Verdicts, shaped as the Rust hostile plugin's


def errno_name(code: int | None) -> str | None:
    return None if code is None else errno.errorcode.get(code, "E?")


def step(what: str, ok: bool, code: int | None, detail: str) -> Json:
    return {"step": what, "ok": ok, "errno": code, "errno_name": errno_name(code), "detail": detail}


def failed(what: str, err: OSError) -> Json:
    return step(what, False, err.errno, f"{errno_name(err.errno)}: {err.strerror}")


def attempt(what: str, call: Callable[[], object], on_ok: str | None = None) -> Json:
    """Runs `call`; a step that succeeded, or failed with the OSError's errno."""
    try:
        result = call()
    except OSError as err:
        return failed(what, err)
    return step(what, True, None, on_ok or f"succeeded (returned {result!r})")


def joined(steps: list[Json]) -> str:
    return "; ".join(f"{s['step']}: {s['detail']}" for s in steps)


def verdict(attack: str, blocked: bool, steps: list[Json], **extra: Any) -> Json:
    code = next((s["errno"] for s in steps if s["errno"] is not None), None)
    return {
        "attack": attack,
        "blocked": blocked,
        "errno": code,
        "errno_name": errno_name(code),
        "detail": joined(steps),
        "steps": steps,
        **extra,
    }


def all_failed(attack: str, steps: list[Json], **extra: Any) -> Json:
    return verdict(attack, bool(steps) and not any(s["ok"] for s in steps), steps, **extra)


def twin(name: str, steps: list[Json], **extra: Any) -> Json:
    ok = bool(steps) and all(s["ok"] for s in steps)
    return {"twin": name, "ok": ok, "detail": joined(steps), "steps": steps, **extra}


class BadArgument(ValueError):
    """The command's argument is not what it takes; nothing was attempted."""


def confinement() -> tuple[bool, str]:
    """Whether the sandbox is visibly in place: pid 1 of its own pid namespace, not
    root, started with a broker fd. Attacks that would hurt the host run only then."""
    pid, uid, euid = os.getpid(), os.getuid(), os.geteuid()
    fd = os.environ.get("PLEXICHAT_BROKER_FD")
    confined = pid == 1 and uid != 0 and euid != 0 and fd is not None
    return confined, f"pid {pid}, uid {uid}, euid {euid}, PLEXICHAT_BROKER_FD {fd}"


def refused_unconfined(attack: str, who: str) -> Json:
    return {
        "attack": attack,
        "blocked": False,
        "skipped": True,
        "detail": (
            f"not attempted: the plugin is not confined ({who}; expected pid 1 in its own "
            "pid namespace, a non-root uid and a broker fd), so this attack would harm the host"
        ),
    }


def data_dir() -> str:
    return os.environ.get("PLEXICHAT_DATA_DIR", "/data")


# ---------------------------------------------------------------------------------------
# Files


def read_file(arg: str) -> Json:
    if not arg:
        raise BadArgument("a path")
    try:
        with open(arg, "rb") as f:
            data = f.read(4096)
    except OSError as err:
        return verdict("read-file", True, [failed(f"open({arg}, 'rb')", err)])
    # Only the size: the content of a file that should not be readable is not echoed.
    return verdict(
        "read-file", False, [step(f"open({arg}, 'rb')", True, None, f"read {len(data)} bytes")]
    )


def write_file(arg: str) -> Json:
    if not arg:
        raise BadArgument("a path")
    try:
        with open(arg, "wb") as f:
            f.write(b"written by the hostile Python plugin\n")
    except OSError as err:
        return verdict("write-file", True, [failed(f"open({arg}, 'wb')", err)])
    steps = [step(f"open({arg}, 'wb') + write", True, None, "written")]
    # Leave nothing behind if the sandbox let it through.
    steps.append(attempt(f"os.unlink({arg}) (cleanup)", lambda: os.unlink(arg)))
    return verdict("write-file", False, steps)


# ---------------------------------------------------------------------------------------
# Network

FAMILIES: dict[str, tuple[int, int, int, str]] = {
    "inet": (socket.AF_INET, socket.SOCK_STREAM, 0, "AF_INET, SOCK_STREAM"),
    "inet6": (socket.AF_INET6, socket.SOCK_STREAM, 0, "AF_INET6, SOCK_STREAM"),
    "unix": (socket.AF_UNIX, socket.SOCK_STREAM, 0, "AF_UNIX, SOCK_STREAM"),
    "netlink": (socket.AF_NETLINK, socket.SOCK_RAW, 0, "AF_NETLINK, SOCK_RAW, NETLINK_ROUTE"),
    "packet": (
        socket.AF_PACKET,
        socket.SOCK_RAW,
        socket.htons(3),
        "AF_PACKET, SOCK_RAW, ETH_P_ALL",
    ),
    "vsock": (socket.AF_VSOCK, socket.SOCK_STREAM, 0, "AF_VSOCK, SOCK_STREAM"),
}


# Every address family number Linux defines (AF_UNSPEC 0 to AF_MCTP 45), each tried
# with SOCK_STREAM, SOCK_DGRAM and SOCK_RAW: seccomp refuses socket(2) whatever they are.
EVERY_FAMILY = range(46)
SOCKET_TYPES = (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW)


def every_family() -> Json:
    steps = []
    for family in EVERY_FAMILY:
        for kind in SOCKET_TYPES:

            def make(family: int = family, kind: int = kind) -> str:
                socket.socket(family, kind, 0).close()
                return "a socket"

            steps.append(attempt(f"socket.socket({family}, {kind.name})", make))
    return all_failed("socket", steps, family="all")


def socket_attack(arg: str) -> Json:
    if arg == "all":
        return every_family()
    if arg not in FAMILIES:
        raise BadArgument(", ".join([*FAMILIES, "all"]))
    family, kind, proto, label = FAMILIES[arg]

    def make() -> str:
        socket.socket(family, kind, proto).close()
        return "a socket"

    return all_failed("socket", [attempt(f"socket.socket({label})", make)], family=arg)


# ---------------------------------------------------------------------------------------
# Processes


def executable() -> str:
    """An executable the sandbox shows (it has /usr/lib, not /bin): the dynamic loader."""
    for path in (
        "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "/usr/lib64/ld-linux-x86-64.so.2",
        "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
        "/usr/lib/ld-linux-aarch64.so.1",
    ):
        if os.path.exists(path):
            return path
    # Executed from a sealed copy, the interpreter may not know its own path ("").
    return sys.executable or "/usr/bin/python3"


def wait_status(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue


def in_child(what: str, action: Callable[[], int]) -> Json:
    """Runs `action` in a forked child so a success cannot change this process; the
    child exits with 0 on success, else the errno `action` returns."""
    try:
        pid = os.fork()
    except OSError as err:
        return step(what, False, None, f"inconclusive: fork for the probe failed: {err}")
    if pid == 0:
        code = 255
        try:
            code = action()
        finally:
            os._exit(max(0, min(code, 255)))
    status = wait_status(pid)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return step(what, False, None, f"the probing child was killed by signal {sig}")
    code = os.WEXITSTATUS(status)
    if code == 0:
        return step(what, True, None, "succeeded (in a child process)")
    return step(what, False, code, f"{errno_name(code)}: {os.strerror(code)}")


def subprocess_attack(arg: str) -> Json:
    import subprocess

    program = arg or executable()
    steps = []
    try:
        done = subprocess.run([program, "--version"], capture_output=True, timeout=10)
        steps.append(
            step(f"subprocess.run([{program}, --version])", True, None, f"exited {done.returncode}")
        )
    except OSError as err:
        # A filename on the error means the child's exec failed (fork worked).
        stage = "exec in the child" if err.filename else "fork"
        steps.append(
            step(
                f"subprocess.run([{program}, --version])",
                False,
                err.errno,
                f"{errno_name(err.errno)}: {err.strerror} ({stage} failed)",
            )
        )
    except subprocess.TimeoutExpired:
        steps.append(step(f"subprocess.run([{program}, --version])", True, None, "ran (timed out)"))

    def exec_it() -> int:
        try:
            # The program's output is not the plugin's log's business.
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        except OSError:
            pass
        try:
            os.execv(program, [program, "--version"])
        except OSError as err:
            return err.errno or 255
        return 255

    steps.append(in_child(f"os.fork() + os.execv({program})", exec_it))
    return all_failed("subprocess", steps, program=program)


def fork_bomb(arg: str) -> Json:
    confined, who = confinement()
    if not confined:
        return refused_unconfined("fork-bomb", who)
    children: list[int] = []
    failure: OSError | None = None
    while len(children) < FORK_BOMB_LIMIT:
        try:
            pid = os.fork()
        except OSError as err:
            failure = err
            break
        if pid == 0:
            while True:
                time.sleep(3600)
        children.append(pid)
    forked = len(children)
    if failure is not None:
        steps = [failed(f"os.fork() #{forked + 1}", failure)]
    else:
        steps = [step(f"os.fork() x{FORK_BOMB_LIMIT}", True, None, "never failed")]
    # Unlike the Rust one, the children are reaped: the twins (fork-ok, thread) work
    # again at once instead of after a restart.
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    for pid in children:
        wait_status(pid)
    return verdict("fork-bomb", forked < 1000, steps, forked=forked, reaped=forked)


def touch_mib(mib: int) -> tuple[list[bytearray], MemoryError | None]:
    """Allocates `mib` MiB in 8 MiB bytearrays, writing every page."""
    chunks: list[bytearray] = []
    chunk = 8 * MIB
    pages = len(range(0, chunk, 4096))
    try:
        for _ in range(0, mib, 8):
            block = bytearray(chunk)
            # bytearray() may map zero pages lazily: writing one byte per page makes
            # the memory real, as the Rust balloon's touches do.
            block[::4096] = b"\xa5" * pages
            chunks.append(block)
    except MemoryError as err:
        return chunks, err
    return chunks, None


def parse_mib(arg: str) -> int:
    try:
        mib = int(arg)
    except ValueError:
        raise BadArgument("a size in MiB") from None
    if mib < 1:
        raise BadArgument("a size in MiB, at least 1")
    return mib


def balloon(arg: str) -> Json:
    mib = parse_mib(arg)
    confined, who = confinement()
    if not confined and mib > UNCONFINED_BALLOON_MIB:
        return refused_unconfined("balloon", who)
    chunks, failure = touch_mib(mib)
    touched = len(chunks) * 8
    del chunks
    if failure is not None:
        s = step(f"bytearray of MiB #{touched + 1}", False, errno.ENOMEM, "MemoryError")
    else:
        s = step(f"allocate and touch {mib} MiB", True, None, "allocated and touched, not stopped")
    return verdict("balloon", failure is not None, [s], touched_mib=touched)


# ---------------------------------------------------------------------------------------
# ctypes: the kernel interfaces a Python plugin can reach without any module's help


class Libc:
    """`syscall(2)` through ctypes, returning the errno instead of raising."""

    def __init__(self) -> None:
        import ctypes

        self.ctypes = ctypes
        self.lib = ctypes.CDLL(None, use_errno=True)
        self.lib.syscall.restype = ctypes.c_long
        machine = os.uname().machine
        if machine not in SYSCALLS:
            raise BadArgument(f"a known machine (this is {machine})")
        self.numbers = SYSCALLS[machine]

    def call(self, name: str, *args: Any) -> tuple[int, int]:
        """(return value, errno) of syscall `name`; integers pass as C longs."""
        c_long = self.ctypes.c_long
        # Variadic: without this ctypes would pass ints as C ints, cutting high bits.
        passed = [c_long(a) if isinstance(a, int) else a for a in args]
        self.ctypes.set_errno(0)
        ret = int(self.lib.syscall(c_long(self.numbers[name]), *passed))
        return ret, (self.ctypes.get_errno() if ret == -1 else 0)

    def step(self, label: str, name: str, *args: Any) -> Json:
        ret, code = self.call(name, *args)
        if ret == -1:
            return step(label, False, code, f"{errno_name(code)}: {os.strerror(code)}")
        return step(label, True, None, f"succeeded (returned {ret})")


def ctypes_mount(libc: Libc, arg: str) -> list[Json] | Json:
    confined, who = confinement()
    if not confined:
        return refused_unconfined("ctypes", who)
    steps = [
        libc.step("mount(none, /tmp, tmpfs, 0, NULL)", "mount", b"none", b"/tmp", b"tmpfs", 0, None)
    ]
    if steps[0]["ok"]:
        steps.append(attempt("umount /tmp (cleanup)", lambda: libc.call("umount2", b"/tmp", 2)))
    return steps


def ctypes_unshare(libc: Libc, arg: str) -> list[Json] | Json:
    # In a child: a success must not move this process into a new namespace.
    def unshare() -> int:
        ret, code = libc.call("unshare", CLONE_NEWUSER)
        return 0 if ret == 0 else code

    return [in_child("unshare(CLONE_NEWUSER)", unshare)]


def ctypes_ptrace(libc: Libc, arg: str) -> list[Json] | Json:
    confined, _ = confinement()
    if confined and arg:
        try:
            target = int(arg)
        except ValueError:
            raise BadArgument("a pid") from None
        steps = [
            libc.step(f"ptrace(PTRACE_ATTACH, {target})", "ptrace", PTRACE_ATTACH, target, 0, 0)
        ]
        if steps[0]["ok"]:
            wait_status(target)
            steps.append(
                libc.step(f"ptrace(PTRACE_DETACH, {target})", "ptrace", PTRACE_DETACH, target, 0, 0)
            )
        return steps

    # Unconfined (or no target): PTRACE_TRACEME in a child harms nothing either way.
    def traceme() -> int:
        ret, code = libc.call("ptrace", PTRACE_TRACEME, 0, 0, 0)
        return 0 if ret == 0 else code

    return [in_child("ptrace(PTRACE_TRACEME) in a child", traceme)]


def fd_step(libc: Libc, label: str, name: str, *args: Any) -> Json:
    """A syscall that returns a new fd on success, closed again at once."""
    ret, code = libc.call(name, *args)
    if ret >= 0:
        os.close(ret)
        return step(label, True, None, f"succeeded (fd {ret})")
    return step(label, False, code, f"{errno_name(code)}: {os.strerror(code)}")


def ctypes_bpf(libc: Libc, arg: str) -> list[Json] | Json:
    attr = libc.ctypes.create_string_buffer(128)
    return [fd_step(libc, "bpf(BPF_PROG_LOAD, {0}, 128)", "bpf", BPF_PROG_LOAD, attr, 128)]


def ctypes_io_uring(libc: Libc, arg: str) -> list[Json] | Json:
    params = libc.ctypes.create_string_buffer(120)
    return [fd_step(libc, "io_uring_setup(8, {0})", "io_uring_setup", 8, params)]


def ctypes_tiocsti(libc: Libc, arg: str) -> list[Json] | Json:
    """As the Rust plugin: TIOCSTI, TIOCSTI with high bits set (the kernel truncates
    the request to 32 bits) and TIOCLINUX on fd 0, then TIOCSTI on /dev/null."""
    char = libc.ctypes.c_char(b"x")
    subcode = libc.ctypes.c_char(b"\x03")  # TIOCL_PASTESEL
    confined, who = confinement()
    if not confined and os.isatty(0):
        # Unconfined on a real terminal this would type into it.
        return refused_unconfined("ctypes", f"{who}; fd 0 is a terminal")
    ref, sub = libc.ctypes.byref(char), libc.ctypes.byref(subcode)
    steps = [
        libc.step("ioctl(0, TIOCSTI, 'x')", "ioctl", 0, TIOCSTI, ref),
        libc.step("ioctl(0, TIOCSTI | 1<<32, 'x')", "ioctl", 0, TIOCSTI | 1 << 32, ref),
        libc.step("ioctl(0, TIOCLINUX, TIOCL_PASTESEL)", "ioctl", 0, TIOCLINUX, sub),
    ]
    try:
        fd = os.open("/dev/null", os.O_RDONLY)
    except OSError:
        # No /dev/null in the sandbox: nothing more to aim at (not a step: its ENOENT
        # would say nothing about the filter).
        return steps
    try:
        steps.append(libc.step("ioctl(/dev/null, TIOCSTI, 'x')", "ioctl", fd, TIOCSTI, ref))
    finally:
        os.close(fd)
    return steps


CTYPES: dict[str, Callable[[Libc, str], list[Json] | Json]] = {
    "mount": ctypes_mount,
    "ptrace": ctypes_ptrace,
    "bpf": ctypes_bpf,
    "unshare": ctypes_unshare,
    "io_uring_setup": ctypes_io_uring,
    "tiocsti": ctypes_tiocsti,
}


def ctypes_attack(arg: str) -> Json:
    name, _, rest = arg.partition(" ")
    if name not in CTYPES:
        raise BadArgument(f"a syscall: {', '.join(CTYPES)} (then its argument, if any)")
    result = CTYPES[name](Libc(), rest.strip())
    if isinstance(result, dict):
        return {**result, "syscall": name}
    if name == "tiocsti":
        # ENOTTY means the request reached the driver: only EPERM shows the filter.
        blocked = all(s["errno"] == errno.EPERM for s in result)
        return verdict("ctypes", blocked, result, syscall=name)
    return all_failed("ctypes", result, syscall=name)


def import_probe(arg: str) -> Json:
    before = set(sys.modules)
    names = ["json", "subprocess", "socket", "ctypes"]
    for name in names:
        __import__(name)
    new = [n for n in names if n not in before]
    return {
        "attack": "import-probe",
        # Importing is never blocked: it is observed (ReportImports), and confinement
        # is what makes these modules harmless.
        "blocked": False,
        "new": new,
        "already_loaded": [n for n in names if n in before],
        "detail": f"imported {', '.join(names)}; new to this process: {', '.join(new) or 'none'}",
    }


def import_flood(arg: str) -> Json:
    """Writes `arg` tiny modules into /tmp and imports each: as many first-time imports
    as it likes, for the supervisor to bound (1024 names kept per run, the rest counted)."""
    try:
        count = int(arg or "2000")
    except ValueError:
        raise BadArgument("a module count") from None
    if not 0 < count <= 20_000:
        raise BadArgument("a module count in 1..20000")
    where = os.path.join(os.environ.get("TMPDIR", "/tmp"), "flood")
    os.makedirs(where, exist_ok=True)
    if where not in sys.path:
        sys.path.append(where)
    for i in range(count):
        with open(os.path.join(where, f"flood_{i}.py"), "w") as f:
            f.write(f"N = {i}\n")
    for i in range(count):
        __import__(f"flood_{i}")
    return {"attack": "import-flood", "blocked": False, "imported": count}


def import_later(arg: str) -> Json:
    """`SECONDS MODULE`: imports MODULE on a thread that many seconds from now, so a test
    can make the import happen while the supervisor cannot write its audit trail."""
    delay, _, module = arg.partition(" ")
    try:
        seconds = float(delay)
    except ValueError:
        raise BadArgument("SECONDS MODULE") from None
    if not (0 <= seconds <= 60 and module.isidentifier()):
        raise BadArgument("SECONDS (0-60) and a module name")
    timer = threading.Timer(seconds, __import__, args=(module,))
    timer.daemon = True
    timer.start()
    return {"attack": "import-later", "blocked": False, "module": module, "in": seconds}


# ---------------------------------------------------------------------------------------
# Twins


def write_and_read_back(path: str) -> list[Json]:
    content = f"twin written by pid {os.getpid()}\n".encode()

    def write() -> int:
        with open(path, "wb") as f:
            return f.write(content)

    steps = [attempt(f"write {path}", write)]
    if steps[0]["ok"]:

        def read() -> bytes:
            with open(path, "rb") as f:
                return f.read()

        back = attempt(f"read back {path}", read)
        if back["ok"]:
            same = read() == content
            back = step(f"read back {path}", same, None, "identical" if same else "content differs")
        steps.append(back)
    return steps


def data_write(arg: str) -> Json:
    return twin("data-write", write_and_read_back(f"{data_dir()}/twin.txt"))


def data_read(arg: str) -> Json:
    path = f"{data_dir()}/twin.txt"

    def read() -> bytes:
        with open(path, "rb") as f:
            return f.read()

    return twin("data-read", [attempt(f"read {path}", read)])


def tmp_write(arg: str) -> Json:
    path = f"{os.environ.get('TMPDIR', '/tmp')}/hostile-py-twin.txt"
    steps = write_and_read_back(path)
    if steps[-1]["ok"]:
        steps.append(attempt(f"os.unlink({path})", lambda: os.unlink(path)))
    return twin("tmp-write", steps)


def thread_twin(arg: str) -> Json:
    out: list[int] = []
    t = threading.Thread(target=lambda: out.append(42))
    try:
        t.start()
    except RuntimeError as err:
        return twin("thread", [step("threading.Thread.start", False, None, str(err))])
    t.join(10)
    return twin("thread", [step("start + join", out == [42], None, f"the thread gave {out}")])


def alloc(arg: str) -> Json:
    mib = parse_mib(arg or "8")
    chunks, failure = touch_mib(mib)
    touched = len(chunks) * 8
    del chunks
    ok = failure is None
    return twin(
        "alloc",
        [
            step(
                f"allocate and touch {mib} MiB",
                ok,
                None if ok else errno.ENOMEM,
                f"touched {touched} MiB",
            )
        ],
    )


def fork_ok(arg: str) -> Json:
    return twin("fork-ok", [in_child("os.fork() + os._exit(0)", lambda: 0)])


def ctypes_ok(arg: str) -> Json:
    libc = Libc()
    ret, code = libc.call("getpid")
    ok = ret == os.getpid()
    detail = f"syscall(SYS_getpid) = {ret}, os.getpid() = {os.getpid()}"
    return twin("ctypes-ok", [step("ctypes syscall(SYS_getpid)", ok, code or None, detail)])


def socketpair(arg: str) -> Json:
    def pair() -> str:
        a, b = socket.socketpair()
        with a, b:
            a.sendall(b"x")
            return b.recv(1).decode()

    return twin("socketpair", [attempt("socket.socketpair() + send/recv", pair, "one byte across")])


def fds(arg: str) -> Json:
    return {"fds": START_FDS}


COMMANDS: dict[str, Callable[[str], Json]] = {
    # attacks
    "read-file": read_file,
    "write-file": write_file,
    "socket": socket_attack,
    "subprocess": subprocess_attack,
    "fork-bomb": fork_bomb,
    "balloon": balloon,
    "ctypes": ctypes_attack,
    "import-probe": import_probe,
    "import-flood": import_flood,
    "import-later": import_later,
    # observations
    "fds": fds,
    # twins
    "data-write": data_write,
    "data-read": data_read,
    "tmp-write": tmp_write,
    "thread": thread_twin,
    "alloc": alloc,
    "fork-ok": fork_ok,
    "ctypes-ok": ctypes_ok,
    "socketpair": socketpair,
}
TWINS = (
    "data-write",
    "data-read",
    "tmp-write",
    "thread",
    "alloc",
    "fork-ok",
    "ctypes-ok",
    "socketpair",
)


def dispatch(name: str, raw: bytes) -> Json:
    """One command; a bad argument or an unexpected exception is a verdict too (never
    "blocked"), so the plugin answers whatever it is asked."""
    arg = raw.decode("utf-8", errors="replace").strip()
    try:
        return COMMANDS[name](arg)
    except BadArgument as err:
        detail = f"bad argument {arg!r}: expected {err}; nothing was attempted"
    except Exception as err:
        detail = f"the hostile plugin's handler raised {type(err).__name__}: {err}"
    if name in TWINS:
        return {"twin": name, "ok": False, "detail": detail}
    return {"attack": name, "blocked": False, "detail": detail}


plugin = Plugin()


def register(name: str) -> None:
    @plugin.command(name)
    def handler(ctx: PluginContext, args: bytes) -> str:
        return json.dumps(dispatch(name, args))


for command in COMMANDS:
    register(command)

if __name__ == "__main__":
    plugin.run()
