#!/usr/bin/env bash
# scripts/vm-check.sh: smoke check meant to run inside the test VM (scripts/vm-run.sh -- scripts/vm-check.sh).
# Owns the list of kernel facts the supervisor relies on; exits 0 only if cgroup v2 with cpu, memory and pids is usable.
#
# Every fact is printed as one "key: value" line so a log can be grepped. Only the
# cgroup v2 checks decide the exit status (they print "FAIL ..." and make it 1);
# everything else (Landlock ABI, namespaces, seccomp, swap accounting, enforcement
# probes, paths) is informational, because the supervisor degrades or the tests skip.
# Running it on a host with a hybrid/v1 layout fails with a clear line, by design.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
CG=/sys/fs/cgroup
TEST_CG=$CG/vm-check.$$
failed=0

fact() { printf '%-28s %s\n' "$1:" "$2"; }
fail() { fact "$1" "FAIL ($2)"; failed=1; }
# First python3 that exists: the guest shares the host's root, pyenv shims included.
PY=$(command -v python3 || command -v /usr/bin/python3 || true)

cleanup() {
  # Kill anything left in the test cgroups, then remove them leaf-first.
  local d
  for d in "$TEST_CG/parent/leaf" "$TEST_CG/parent" "$TEST_CG"; do
    [ -d "$d" ] || continue
    [ -e "$d/cgroup.kill" ] && echo 1 >"$d/cgroup.kill" 2>/dev/null
  done
  sleep 0.2
  for d in "$TEST_CG/parent/leaf" "$TEST_CG/parent" "$TEST_CG"; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null
  done
  return 0
}
trap cleanup EXIT

echo "== vm-check: $(uname -n) =="
fact kernel "$(uname -r)"
fact uid "$(id -u)"
fact cpus "$(nproc)"
fact memory_total_kib "$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
fact swap_devices "$(($(wc -l </proc/swaps) - 1))"
fact cwd "$REPO"
fact root_fs "$(awk '$2 == "/" {print $3, $4}' /proc/mounts | tail -n1)"
fact tmp_mount "$(awk '$2 == "/tmp" {print $1, $3}' /proc/mounts | tail -n1)"
probe=/tmp/vm-check.probe.$$
if echo ok >"$probe" 2>/dev/null && [ "$(cat "$probe")" = ok ]; then
  fact tmp_writable yes
  rm -f "$probe"
else
  fact tmp_writable no
fi
if [ -w "$REPO/target" ] && touch "$REPO/target/.vm-check.$$" 2>/dev/null; then
  fact target_writable yes
  rm -f "$REPO/target/.vm-check.$$"
else
  fact target_writable "no (pass --rwdir target to vm-run.sh)"
fi
if [ -x "$REPO/target/debug/plexichat" ]; then
  if "$REPO/target/debug/plexichat" --help >/dev/null 2>&1; then
    fact host_built_binary "runs (target/debug/plexichat --help)"
  else
    fact host_built_binary "present but --help failed"
  fi
else
  fact host_built_binary "not built (target/debug/plexichat)"
fi

# ---- cgroup v2 (decides the exit status) ------------------------------------
fstype=$(stat -fc %T "$CG" 2>/dev/null || echo missing)
fact cgroup_fs "$fstype"
if [ "$fstype" != cgroup2fs ]; then
  fail cgroup_v2 "$CG is $fstype, not a pure cgroup v2 mount"
  echo "vm-check: FAILED (no cgroup v2 at $CG)"
  exit 1
fi
controllers=$(cat "$CG/cgroup.controllers")
fact cgroup_controllers "$controllers"
for c in cpu memory pids; do
  case " $controllers " in *" $c "*) ;; *) fail "controller_$c" "missing from cgroup.controllers" ;; esac
done

# Enable the controllers for the root's children (the root cgroup is exempt from
# the no-internal-processes rule), then for one nested level, the way the
# supervisor nests a per-plugin cgroup under its own.
enable() { # dir: write +cpu +memory +pids into dir/cgroup.subtree_control
  local c
  for c in cpu memory pids; do
    echo "+$c" >"$1/cgroup.subtree_control" 2>/dev/null || return 1
  done
}
if enable "$CG"; then fact root_subtree_control "$(cat "$CG/cgroup.subtree_control")"; else fail root_subtree_control "cannot enable +cpu +memory +pids"; fi
if mkdir "$TEST_CG" 2>/dev/null; then fact mkdir_child_cgroup ok; else fail mkdir_child_cgroup "mkdir $TEST_CG"; fi
if [ -d "$TEST_CG" ]; then
  set_knob() { # file value
    if echo "$2" >"$1" 2>/dev/null && [ -n "$(cat "$1")" ]; then
      fact "$(basename "$1")" "$(cat "$1") (set ok)"
    else
      fail "$(basename "$1")" "cannot write '$2'"
    fi
  }
  set_knob "$TEST_CG/memory.max" 32M
  set_knob "$TEST_CG/pids.max" 8
  set_knob "$TEST_CG/cpu.max" "10000 100000"
  if [ -e "$TEST_CG/memory.swap.max" ]; then fact memory.swap.max "present ($(cat "$TEST_CG/memory.swap.max"))"; else fact memory.swap.max "absent (no swap accounting)"; fi
  if [ -e "$TEST_CG/cgroup.kill" ]; then fact cgroup.kill present; else fact cgroup.kill absent; fi
  if mkdir -p "$TEST_CG/parent/leaf" 2>/dev/null && enable "$TEST_CG" && enable "$TEST_CG/parent"; then
    fact nested_subtree_control "ok ($(cat "$TEST_CG/parent/cgroup.subtree_control"))"
  else
    fail nested_subtree_control "cannot enable controllers two levels down"
  fi

  # ---- enforcement probes (informational) ----------------------------------
  leaf=$TEST_CG/parent/leaf
  if [ -d "$leaf" ]; then
    # A shell inside the leaf starts 6 sleeps under pids.max=4: some forks must fail.
    echo 4 >"$leaf/pids.max" 2>/dev/null
    (sh -c "echo \$\$ >'$leaf/cgroup.procs'; for i in 1 2 3 4 5 6; do sleep 1 & done; wait" >/dev/null 2>&1)
    hits=$(awk '/^max / {print $2}' "$leaf/pids.events" 2>/dev/null)
    fact pids_max_enforced "$([ "${hits:-0}" -gt 0 ] && echo "yes (pids.events max=$hits)" || echo no)"

    echo 16M >"$leaf/memory.max" 2>/dev/null
    [ -e "$leaf/memory.swap.max" ] && echo 0 >"$leaf/memory.swap.max" 2>/dev/null
    # dd fills a 64M buffer from /dev/zero: anonymous memory, so (no swap) the
    # cgroup's OOM killer must end it. A small binary: under a tight memory.max a
    # big interpreter thrashes its own page cache over 9p for tens of seconds.
    # (The inner subshell keeps bash's "Killed" notice out of the log.)
    rc=$( (sh -c "echo \$\$ >'$leaf/cgroup.procs'; exec dd if=/dev/zero of=/dev/null bs=64M count=1" >/dev/null 2>&1; echo $?) 2>/dev/null)
    oom=$(awk '/^oom_kill / {print $2}' "$leaf/memory.events" 2>/dev/null)
    fact memory_max_enforced "$([ "${oom:-0}" -gt 0 ] && echo "yes (64M buffer under 16M: exit $rc, oom_kill=$oom)" || echo "no (exit $rc)")"

    # A sleeper joins the leaf; writing 1 to cgroup.kill must SIGKILL it.
    # (cgroupfs files report size 0, so test their content, never [ -s ].)
    # In a subshell whose stderr is dropped: bash reports the SIGKILLed job there.
    (
      procs() { [ -n "$(cat "$leaf/cgroup.procs" 2>/dev/null)" ]; }
      sh -c "echo \$\$ >'$leaf/cgroup.procs'; exec sleep 300" &
      spid=$!
      for _ in $(seq 50); do procs && break; sleep 0.2; done
      if [ -e "$leaf/cgroup.kill" ] && procs; then
        echo 1 >"$leaf/cgroup.kill"
        # Exited tasks leave cgroup.procs at once (kill -0 would still see the zombie).
        for _ in $(seq 25); do procs || break; sleep 0.2; done
      fi
      if procs || ! [ -e "$leaf/cgroup.kill" ]; then
        kill -9 "$spid" 2>/dev/null
        wait "$spid" 2>/dev/null
        fact cgroup_kill_works no
      else
        kill -9 "$spid" 2>/dev/null # never wait 300 s on a sleeper that escaped
        wait "$spid" 2>/dev/null
        krc=$?
        fact cgroup_kill_works "$([ $krc -eq 137 ] && echo "yes (SIGKILL)" || echo "no (exit $krc)")"
      fi
    ) 2>/dev/null
  fi
fi
cleanup
if [ -d "$TEST_CG" ]; then fail rmdir_child_cgroup "still present"; else fact rmdir_child_cgroup ok; fi

# ---- other kernel features (informational) ----------------------------------
if [ -n "$PY" ]; then
  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) returns the ABI.
  fact landlock_abi "$("$PY" -c 'import ctypes; libc=ctypes.CDLL(None, use_errno=True); r=libc.syscall(444,0,0,1); print(r if r>0 else "unavailable (errno %d)" % ctypes.get_errno())' 2>&1)"
  # Install a seccomp filter that makes getppid (110) fail with EPERM, then call it.
  fact seccomp_filter "$("$PY" - <<'EOF' 2>&1
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
def ins(code, jt, jf, k): return struct.pack("HBBI", code, jt, jf, k)
prog = b"".join([
    ins(0x20, 0, 0, 0),              # ld [nr]
    ins(0x15, 0, 1, 110),            # jeq #getppid
    ins(0x06, 0, 0, 0x00050000 | 1), # ret ERRNO(EPERM)
    ins(0x06, 0, 0, 0x7fff0000),     # ret ALLOW
])
buf = ctypes.create_string_buffer(prog)
class fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
p = fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
if libc.syscall(317, 1, 0, ctypes.byref(p)) != 0:  # seccomp(SET_MODE_FILTER)
    print("unavailable (errno %d)" % ctypes.get_errno())
else:
    r = libc.syscall(110)
    print("works (getppid -> %d errno %d)" % (r, ctypes.get_errno()) if r == -1 else "filter ignored")
EOF
)"
fi
fact seccomp_actions "$(cat /proc/sys/kernel/seccomp/actions_avail 2>/dev/null || echo unknown)"
if unshare -mpnfiu --mount-proc true 2>/dev/null; then fact namespaces_mount_pid_net_ipc_uts ok; else fact namespaces_mount_pid_net_ipc_uts FAIL; fi
if unshare -U -r true 2>/dev/null; then fact namespace_user ok; else fact namespace_user FAIL; fi
if unshare -U -r -m -p -n -f --mount-proc true 2>/dev/null; then fact namespaces_unprivileged_style ok; else fact namespaces_unprivileged_style FAIL; fi
fact lsm "$(cat /sys/kernel/security/lsm 2>/dev/null || echo unknown)"

if [ "$failed" -eq 0 ]; then
  echo "vm-check: OK (cgroup v2 with cpu, memory and pids is usable)"
  exit 0
fi
echo "vm-check: FAILED (see FAIL lines above)"
exit 1
