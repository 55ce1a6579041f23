#!/usr/bin/env bash
# scripts/vm-systemd.sh: boot Debian's kernel in QEMU with systemd as PID 1 on a pure cgroup v2
# hierarchy, run one guest script as a systemd unit, and power off. Owns the initramfs, the guest root.
#
# Usage: scripts/vm-systemd.sh [--timeout SECS] [--memory SIZE] [--tmpfs PATH]... [--verbose] -- SCRIPT [ARGS...]
#   --tmpfs PATH: a fresh tmpfs at PATH in the guest instead of the overlay (where a file's
#   st_dev is the overlay's but /proc/locks names the upper layer's).
#
# The guest root is the host's root filesystem (9p, read-only) under a tmpfs overlay, so
# the guest can write anywhere and every write vanishes with the VM; host paths such as
# target/debug/* exist in the guest at the same path. Before systemd starts, the
# initramfs removes /.dockerenv (systemd would otherwise take the VM for a Docker
# container and ignore the kernel command line), empties /etc/fstab, masks the units
# that cannot work or are slow over 9p, and adds `vmtest.service`, which runs SCRIPT
# (as root, in the repo) and powers the VM off when it ends. SCRIPT's stdout and stderr
# are streamed to ours. Boot to the script takes ~20-40 s on a 2-core host under TCG.
#
# Exit status: SCRIPT's own; 77 when no VM can run here (one "vm-systemd: SKIP: ..."
# line; with CI=true a failure "vm-systemd: FAIL: ...", exit 1); 124 on the timeout;
# 125 when the VM ended without reporting SCRIPT's status; 2 on a usage error.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
TIMEOUT=${VM_TIMEOUT:-900}
MEMORY=${VM_MEMORY:-1536M}
VERBOSE=0
TMPFS=()

usage() {
  sed -n '5,7p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# shellcheck source=scripts/vm-lib.sh
. "$REPO/scripts/vm-lib.sh"
HINT="install as in .ci/run: apt-get install --no-install-recommends qemu-system-x86 linux-image-amd64 busybox-static systemd"
unavailable() { vm_unavailable vm-systemd "$HINT" "$@"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    --memory) MEMORY=${2:?}; shift 2 ;;
    --tmpfs) TMPFS+=("${2:?}"); shift 2 ;;
    --verbose | -v) VERBOSE=1; shift ;;
    -h | --help) usage ;;
    --) shift; break ;;
    *) echo "vm-systemd: unknown option '$1' (the script goes after --)" >&2; usage ;;
  esac
done
[ $# -gt 0 ] || { echo "vm-systemd: no script given" >&2; usage; }

# ---- can the VM run here? ----------------------------------------------------
command -v qemu-system-x86_64 >/dev/null || unavailable "qemu-system-x86_64 not found"
BUSYBOX=$(command -v busybox.static || command -v busybox || true)
[ -n "$BUSYBOX" ] || unavailable "busybox not found"
[ -x /lib/systemd/systemd ] || unavailable "systemd is not installed on the host (the guest runs the host's)"
KERNEL=
vm_find_kernel vm-systemd "$HINT"

STATE=$(mktemp -d "${TMPDIR:-/tmp}/vm-systemd.XXXXXX")
qemu_pid=
on_exit() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null
  if [ "${VM_KEEP:-0}" = 1 ]; then echo "vm-systemd: kept $STATE" >&2; else rm -rf "$STATE"; fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the initramfs -------------------------------------------------------------
# busybox, the modules that reach the 9p root (Debian builds virtio and 9p as modules),
# and an /init that builds the overlay root and hands over to systemd.
IRD=$STATE/initramfs
mkdir -p "$IRD"/{bin,mod,proc,sys,dev,lower,upper,newroot}
cp "$BUSYBOX" "$IRD/bin/busybox"
: >"$IRD/modules.order"
for m in virtio_pci 9pnet_virtio 9p overlay; do
  modprobe -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' | while read -r ko; do
  name=$(basename "$ko")
  name=${name%.zst}
  name=${name%.xz}
  case "$ko" in
    *.zst) zstd -dcq "$ko" >"$IRD/mod/$name" ;;
    *.xz) xz -dc "$ko" >"$IRD/mod/$name" ;;
    *) cp "$ko" "$IRD/mod/$name" ;;
  esac
  echo "$name" >>"$IRD/modules.order"
done

# The unit that runs the script; systemd boots into it instead of default.target.
cat >"$STATE/vmtest.service" <<EOF
[Unit]
Description=Run the service-path test script, then power off
After=basic.target systemd-journald.service
SuccessAction=poweroff-immediate
FailureAction=poweroff-immediate
[Service]
Type=oneshot
WorkingDirectory=$REPO
ExecStart=/bin/bash $STATE/run.sh
StandardOutput=journal+console
TimeoutStartSec=infinity
EOF
# Power off at once when it ends: the host is waiting, nothing in the guest is worth keeping.
vm_command_script "$STATE/run.sh" "$REPO" "$STATE" 'sync; echo o >/proc/sysrq-trigger' -- "$@"

# Units that fail in this guest or walk the whole shared host tree over 9p (minutes).
MASKS="systemd-tmpfiles-setup.service systemd-tmpfiles-clean.timer systemd-timesyncd.service
systemd-logind.service systemd-udev-trigger.service systemd-udev-settle.service
systemd-networkd.service systemd-resolved.service apt-daily.timer apt-daily-upgrade.timer
e2scrub_reap.service getty@.service serial-getty@.service console-getty.service
systemd-firstboot.service systemd-machine-id-commit.service systemd-update-utmp.service
ldconfig.service systemd-hwdb-update.service systemd-journal-catalog-update.service"

cat >"$IRD/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc && mount -t sysfs sys /sys && mount -t devtmpfs dev /dev
for m in \$(cat /modules.order); do insmod /mod/\$m || echo "vm-systemd: insmod \$m failed"; done
mount -t 9p -o ro,trans=virtio,version=9p2000.L,access=any,msize=524288 hostroot /lower ||
  { echo "vm-systemd: cannot mount the host root"; poweroff -f; }
mount -t tmpfs -o mode=0755 upper /upper && mkdir /upper/u /upper/w
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w root /newroot ||
  { echo "vm-systemd: cannot make the overlay root"; poweroff -f; }
mkdir -p /newroot$STATE
mount -t 9p -o trans=virtio,version=9p2000.L,access=any,msize=524288 vmstate /newroot$STATE ||
  { echo "vm-systemd: cannot mount the state directory"; poweroff -f; }
for d in ${TMPFS[*]+${TMPFS[*]}}; do mkdir -p /newroot\$d && mount -t tmpfs -o mode=0755 tmp /newroot\$d; done
rm -f /newroot/.dockerenv /newroot/run/.containerenv
: >/newroot/etc/fstab
mkdir -p /newroot/etc/systemd/system
for u in $(echo $MASKS); do ln -sf /dev/null /newroot/etc/systemd/system/\$u; done
cp /newroot$STATE/vmtest.service /newroot/etc/systemd/system/vmtest.service
umount /proc /sys /dev 2>/dev/null
exec switch_root /newroot /lib/systemd/systemd --unit=vmtest.service --log-level=warning
EOF
chmod 755 "$IRD/init"
(cd "$IRD" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1) >"$STATE/initrd.gz"

# ---- the boot ------------------------------------------------------------------
args=(-machine q35 -cpu max -m "$MEMORY" -smp 2 -no-reboot -display none -monitor none
  -net none -serial "file:$STATE/console.log"
  -kernel "$KERNEL" -initrd "$STATE/initrd.gz"
  -append "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=3 systemd.show_status=error"
  -fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap"
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
  -fsdev "local,id=vmstate,path=$STATE,security_model=none,multidevs=remap"
  -device virtio-9p-pci,fsdev=vmstate,mount_tag=vmstate)
if [ "${VM_KVM:-0}" = 1 ]; then args+=(-accel kvm); else args+=(-accel tcg); fi

start=$(date +%s)
timeout --kill-after=30 "$TIMEOUT" qemu-system-x86_64 "${args[@]}" </dev/null >"$STATE/qemu.log" 2>&1 &
qemu_pid=$!
vm_stream_and_wait "$qemu_pid" "$STATE" "$STATE/console.log"
qemu_rc=$VM_RC
qemu_pid=
elapsed=$(($(date +%s) - start))
echo "vm-systemd: the VM ran for ${elapsed} s" >&2

if [ -s "$STATE/status" ]; then
  exit "$(cat "$STATE/status")"
fi
if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
  echo "vm-systemd: timed out after ${TIMEOUT}s; last console lines:" >&2
  tail -n 30 "$STATE/console.log" >&2 || true
  exit 124
fi
tail -n 40 "$STATE/console.log" "$STATE/qemu.log" >&2 || true
echo "vm-systemd: the VM exited ($qemu_rc) after ${elapsed}s without reporting the script's status" >&2
exit 125
