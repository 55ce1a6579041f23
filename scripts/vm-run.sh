#!/usr/bin/env bash
# scripts/vm-run.sh: run one command as root in a throwaway QEMU VM (virtme-ng + Debian kernel from /boot) with a pure cgroup v2 hierarchy.
# Owns the VM boot flags, kernel choice, the whole-run timeout, exit-status propagation and the "VM unavailable" exit code 77.
#
# Usage: scripts/vm-run.sh [options] -- <command> [args...]
#   --memory SIZE     guest RAM (default 1G, env VM_MEMORY)
#   --cpus N          guest CPUs (default 2, env VM_CPUS)
#   --timeout SECS    kill the whole VM after SECS (default 900, env VM_TIMEOUT)
#   --rwdir DIR       let the guest write DIR on the host (repeatable; relative to the
#                     repo). Everything else of the host is read-only in the guest,
#                     except /tmp, /var, /etc, /home, /usr, /opt, /srv which are
#                     guest-private overlays (writes vanish with the VM).
#   --kernel PATH     boot PATH instead of the newest /boot/vmlinuz-*-amd64 (env VM_KERNEL)
#   --verbose         show the guest's boot console (debugging a VM that will not boot)
#
# The guest shares the host's root filesystem (9p, read-only), so host-built binaries
# such as target/debug/* run there at the same path; the command runs in the repo root.
# Its stdout and stderr are streamed to ours as two streams (their relative order is
# approximate); its stdin is /dev/null. Boot takes ~15 s on an idle 2-core host
# (TCG, no KVM) and each process the guest spawns costs ~0.1-0.4 s: run a few
# host-built test binaries in the VM, never cargo.
#
# Exit status:
#   the command's own status   when the command ran to completion in the guest
#                              (a command may itself exit 77/124/125: don't)
#   77                         the VM cannot run here (vng, qemu, busybox or kernel missing):
#                              exactly one line "vm-run: SKIP: ..." on stderr. With CI=true
#                              this is a failure instead: one line "vm-run: FAIL: ...", exit 1.
#   124                        the timeout fired (hung guest or command)
#   125                        the VM started but never reported the command's status
#                              (guest kernel panic, boot failure, qemu error)
#   2                          usage error
# KVM is not used unless VM_KVM=1: TCG is slower but works on hosts whose /dev/kvm
# is absent or unusable (on the dev/CI machines /dev/kvm exists but a KVM guest hangs).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
MEMORY=${VM_MEMORY:-1G}
CPUS=${VM_CPUS:-2}
TIMEOUT=${VM_TIMEOUT:-900}
KERNEL=${VM_KERNEL:-}
VERBOSE=0
RWDIRS=()

usage() {
  sed -n '5,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# shellcheck source=scripts/vm-lib.sh
. "$REPO/scripts/vm-lib.sh"
HINT="install as in .ci/run: apt-get install --no-install-recommends qemu-system-x86 linux-image-amd64 tiny-initramfs busybox-static; pip install virtme-ng"
unavailable() { vm_unavailable vm-run "$HINT" "$@"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --memory) MEMORY=${2:?}; shift 2 ;;
    --memory=*) MEMORY=${1#*=}; shift ;;
    --cpus) CPUS=${2:?}; shift 2 ;;
    --cpus=*) CPUS=${1#*=}; shift ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    --rwdir) RWDIRS+=("${2:?}"); shift 2 ;;
    --rwdir=*) RWDIRS+=("${1#*=}"); shift ;;
    --kernel) KERNEL=${2:?}; shift 2 ;;
    --kernel=*) KERNEL=${1#*=}; shift ;;
    --verbose | -v) VERBOSE=1; shift ;;
    -h | --help) usage ;;
    --) shift; break ;;
    *) echo "vm-run: unknown option '$1' (the command goes after --)" >&2; usage ;;
  esac
done
[ $# -gt 0 ] || { echo "vm-run: no command given" >&2; usage; }

# ---- can the VM run here? ----------------------------------------------------
# vng comes from pip; with pyenv it may be on PATH only as a shim, or not yet
# rehashed, so also look next to the python3 interpreter that has virtme-ng.
VNG=${VNG:-$(command -v vng || true)}
if [ -z "$VNG" ] && command -v python3 >/dev/null; then
  cand=$(python3 -c 'import os, sys; print(os.path.join(os.path.dirname(sys.executable), "vng"))' 2>/dev/null || true)
  [ -n "$cand" ] && [ -x "$cand" ] && VNG=$cand
fi
[ -n "$VNG" ] || unavailable "vng (virtme-ng) not found"
command -v qemu-system-x86_64 >/dev/null || unavailable "qemu-system-x86_64 not found"
# Debian's kernel has virtio/9p as modules, so vng builds an initramfs around busybox.
command -v busybox >/dev/null || command -v busybox.static >/dev/null || unavailable "busybox not found"
command -v timeout >/dev/null || unavailable "timeout (coreutils) not found"
vm_find_kernel vm-run "$HINT"
kver=$KVER

# ---- the run -----------------------------------------------------------------
# A host directory the guest can write (--rwdir mounts it over the guest's private
# /tmp overlay): the command script, the command's stdout/stderr and its status.
STATE=$(mktemp -d "${TMPDIR:-/tmp}/vm-run.XXXXXX")
vm_pid=
on_exit() {
  [ -n "$vm_pid" ] && kill "$vm_pid" 2>/dev/null
  rm -rf "$STATE"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# The command goes into a script rather than onto the kernel command line (vng
# passes --exec there, and x86 caps it at 2048 bytes).
# Its output goes to files in $STATE, not to vng's stdio: vng hands the guest
# command's stdio and exit code over virtio-serial ports that its guest init
# finds as /dev/virtio-ports/*, symlinks that only udev creates. Without udev
# (.ci/run does not install it: it adds 10-30 s to every boot) vng silently
# drops the output and exits 255 whatever the command did. Files on the 9p share
# work either way.
vm_command_script "$STATE/cmd.sh" "$REPO" "$STATE" "" -- "$@"

# --force-9p: vng would otherwise try /usr/lib/qemu/virtiofsd (Debian 12's is the
# old C one with another command line), fail, and waste ~3 s per shared dir.
args=(--run "$KERNEL" --force-9p --user root --memory "$MEMORY" --cpus "$CPUS" --cwd "$REPO" --rwdir "$STATE")
[ "${VM_KVM:-0}" = 1 ] || args+=(--disable-kvm)
[ "$VERBOSE" = 1 ] && args+=(--verbose)
for d in "${RWDIRS[@]+"${RWDIRS[@]}"}"; do
  case "$d" in /*) ;; *) d=$REPO/$d ;; esac
  mkdir -p "$d"
  args+=(--rwdir "$d")
done
args+=(--exec "/bin/bash $STATE/cmd.sh")

[ "$VERBOSE" = 1 ] && echo "vm-run: $VNG ${args[*]}" >&2
start=$(date +%s)
# vng/qemu's own output (errors; the boot console with --verbose) goes to a log,
# shown on failure or streamed with --verbose. Never let qemu write to our
# stdout/stderr directly: it reopens /proc/self/fd/1 and 2 with O_TRUNC, which
# overwrites a log file from offset 0 even when it was opened with >>.
# stdin is /dev/null: with a terminal, qemu's stdio chardev puts it in raw mode.
timeout --kill-after=30 "$TIMEOUT" "$VNG" "${args[@]}" </dev/null >"$STATE/vng.log" 2>&1 &
vm_pid=$!
# Stream the command's output while the VM runs; tail --pid prints what is left
# and exits once the VM is gone.
vm_stream_and_wait "$vm_pid" "$STATE" "$STATE/vng.log"
vng_rc=$VM_RC
vm_pid=
elapsed=$(($(date +%s) - start))

if [ -s "$STATE/status" ]; then
  rc=$(cat "$STATE/status")
  [ "$VERBOSE" = 1 ] && echo "vm-run: command exited $rc after ${elapsed}s (kernel $kver)" >&2
  exit "$rc"
fi
if [ "$vng_rc" = 124 ] || [ "$vng_rc" = 137 ]; then
  echo "vm-run: timed out after ${TIMEOUT}s (guest or command hung); raise --timeout or VM_TIMEOUT" >&2
  exit 124
fi
[ "$VERBOSE" = 1 ] || tail -n 30 "$STATE/vng.log" >&2
echo "vm-run: the VM exited ($vng_rc) after ${elapsed}s without reporting the command's status (boot failure or guest panic; rerun with --verbose)" >&2
exit 125
