# scripts/vm-lib.sh: what the two VM runners share (sourced by vm-run.sh and vm-systemd.sh):
# the "no VM here" exit, the kernel, the guest command script, streaming and waiting.

# The VM cannot run on this machine: one clear line; 77 locally, a failure under CI.
# Usage: vm_unavailable NAME HINT MESSAGE...
vm_unavailable() {
  local name=$1 hint=$2
  shift 2
  if [ "${CI:-}" = true ]; then
    echo "$name: FAIL: cannot run the VM under CI: $* ($hint)" >&2
    exit 1
  fi
  echo "$name: SKIP: cannot run the VM: $* ($hint)" >&2
  exit 77
}

# Sets KERNEL (VM_KERNEL, else the newest /boot/vmlinuz-*-amd64) and KVER, or calls
# vm_unavailable. Usage: vm_find_kernel NAME HINT
vm_find_kernel() {
  KERNEL=${KERNEL:-${VM_KERNEL:-}}
  if [ -z "$KERNEL" ]; then
    KERNEL=$(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$KERNEL" ] || vm_unavailable "$1" "$2" "no kernel /boot/vmlinuz-*-amd64"
  fi
  [ -r "$KERNEL" ] || vm_unavailable "$1" "$2" "kernel $KERNEL not readable"
  KVER=${KERNEL##*/vmlinuz-}
  [ -d "/lib/modules/$KVER" ] || vm_unavailable "$1" "$2" "no modules for $KVER in /lib/modules"
}

# Writes the guest's command script: runs the command in REPO with stdin /dev/null, its
# output appended to STATE/stdout and STATE/stderr and its status to STATE/status, then
# runs EPILOGUE (a shell line, may be empty). %q keeps argv exact.
# Usage: vm_command_script SCRIPT REPO STATE EPILOGUE -- COMMAND...
vm_command_script() {
  local script=$1 repo=$2 state=$3 epilogue=$4
  shift 5
  {
    echo '#!/bin/bash'
    printf 'cd %q || exit 126\n' "$repo"
    # Where the command may leave files for the host.
    printf 'export VM_OUT=%q\n' "$state"
    printf '%q ' "$@"
    printf '</dev/null >>%q 2>>%q\n' "$state/stdout" "$state/stderr"
    echo 'rc=$?'
    printf 'echo "$rc" >%q\n' "$state/status"
    [ -n "$epilogue" ] && echo "$epilogue"
    echo 'exit "$rc"'
  } >"$script"
  chmod 755 "$script"
  : >"$state/stdout"
  : >"$state/stderr"
}

# Streams STATE/stdout and STATE/stderr (and LOG with VERBOSE=1) while process PID runs,
# then waits for it; sets VM_RC to its exit status. Usage: vm_stream_and_wait PID STATE LOG
vm_stream_and_wait() {
  local pid=$1 state=$2 log=$3 tails=()
  tail -n +1 -f --pid="$pid" "$state/stdout" &
  tails+=($!)
  tail -n +1 -f --pid="$pid" "$state/stderr" >&2 &
  tails+=($!)
  if [ "${VERBOSE:-0}" = 1 ]; then
    touch "$log"
    tail -n +1 -f --pid="$pid" "$log" >&2 &
    tails+=($!)
  fi
  set +e
  wait "$pid"
  VM_RC=$?
  wait "${tails[@]}"
  set -e
}
