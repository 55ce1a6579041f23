#!/usr/bin/env bash
# tests/vm/service_path.sh: the operator's path, run inside a VM whose PID 1 is systemd (pure
# cgroup v2): install the tree `make install` produced, start, reach, reload, kill, stop.
#
# Usage (in the guest, by scripts/vm-service-test.sh): tests/vm/service_path.sh STAGE
#   STAGE: a DESTDIR that `make install` filled. Each step prints "ok - ..."; the first
#   failure prints "FAIL - ...", the unit's journal, and exits 1.
set -uo pipefail
STAGE=${1:?usage: service_path.sh STAGE}
REPO=$PWD
UNIT=plexichat-supervisor
CLI=/usr/local/bin/plexichat
SERVER_USER=plexichat-app
# The shipped configuration's plugin uid range (sandbox.uid_base, uid_count).
UID_LO=200000
UID_HI=210000

fail() {
  echo "FAIL - $*"
  echo "---- journalctl -u $UNIT (last 60 lines) ----"
  journalctl -u "$UNIT" --no-pager -n 40 -o json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    fields = " ".join(f"{k[10:].lower()}={v}" for k, v in e.items() if k.startswith("PLEXICHAT_"))
    print(e.get("PRIORITY"), e.get("MESSAGE"), fields)' || true
  for p in hello hostile; do
    echo "---- plexichat plugin show $p; its log ----"
    "$CLI" plugin show "$p" 2>&1 | head -30
    find /var/log/plexichat -path "*$p*" -type f -exec tail -n 15 {} + 2>/dev/null
  done
  exit 1
}
ok() { echo "ok - $*"; }

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  while [ "$SECONDS" -lt "$deadline" ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

plugin_pid() {
  "$CLI" --output json plugin show "$1" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["pid"] or 0)' 2>/dev/null || echo 0
}
plugin_running() { [ "$(plugin_pid "$1")" -gt 0 ]; }
main_pid() { systemctl show -p MainPID --value "$UNIT"; }
plugin_processes() { ps -eo uid=,pid=,comm= | awk -v lo=$UID_LO -v hi=$UID_HI '$1 >= lo && $1 < hi'; }
no_plugin_process() { [ -z "$(plugin_processes)" ]; }

# A plugin package directory: the manifest and the binary next to it.
package() {
  local name=$1 manifest=$2 binary=$3 dir=/tmp/pkg-$1
  mkdir -p "$dir"
  cp "$manifest" "$dir/plugin.toml"
  cp "$binary" "$dir/$name"
  echo "$dir"
}

# ---- install, as README "Installing as a service" says -------------------------------
cp -a "$STAGE/." / || fail "copying the installed tree"
systemctl daemon-reload
systemd-sysusers || fail "systemd-sysusers"
systemd-tmpfiles --create plexichat.conf || fail "systemd-tmpfiles --create plexichat.conf"
useradd --system --no-create-home --shell /usr/sbin/nologin "$SERVER_USER" || fail "useradd"
usermod -aG plexichat,plexichat-server "$SERVER_USER" || fail "usermod"
# Debian 12's kernel (6.1) has Landlock ABI 2; the shipped minimum is 6 (kernel >= 6.7).
# An operator on such a kernel lowers it, knowing what ABI 2 does not restrict.
sed -i 's/^landlock_minimum_abi = .*/landlock_minimum_abi = 2/' /etc/plexichat/supervisor.toml
ok "installed: $(wc -l </usr/local/share/plexichat/installed-files) files, users and directories made"

# The shipped config accepts only signed packages: the host's root seeds the first
# publisher key offline, before the service starts, as the README's operator guide says.
key=/tmp/publisher
ssh-keygen -q -t ed25519 -N '' -C 'vm test publisher' -f "$key" || fail "ssh-keygen"
out=$(/usr/local/bin/plexichat-supervisor --config /etc/plexichat/supervisor.toml \
  --bootstrap-key "$key.pub" --publisher "VM test" 2>&1) || fail "--bootstrap-key: $out"
ok "publisher key seeded offline: $out"

exposure=$(systemd-analyze security "$UNIT" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "systemd-analyze security gave no exposure level"
awk -v e="$exposure" 'BEGIN { exit !(e <= 5.0) }' || fail "exposure $exposure > 5.0"
ok "systemd-analyze security: exposure $exposure (<= 5.0)"

# ---- start: Type=notify, so start returns once READY=1 was sent -----------------------
systemctl enable --now "$UNIT" || fail "systemctl enable --now"
[ "$(systemctl is-active "$UNIT")" = active ] || fail "not active after start"
[ "$(systemctl show -p StatusText --value "$UNIT")" = serving ] || fail "StatusText is not 'serving'"
[ "$(stat -c '%U:%G %a' /run/plexichat)" = "root:plexichat 750" ] ||
  fail "/run/plexichat is $(stat -c '%U:%G %a' /run/plexichat), not root:plexichat 750"
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || fail "not a pure cgroup v2 host"
[ "$(systemctl show -p WatchdogUSec --value "$UNIT")" = 1min ] || fail "WatchdogSec is not 60 s"
report=$("$CLI" security plugin-status 2>&1)
echo "$report" | grep -q "inherited seccomp" ||
  fail "security plugin-status does not name the unit's inherited seccomp filters: $report"
ok "started: READY reached, pid $(main_pid), socket dir root:plexichat 0750, cgroup v2"

hello=$(package hello "$REPO/plugin-sdk/examples/hello/plugin.toml" "$REPO/target/debug/examples/hello")
# Only declared commands may be invoked: the one attack this test runs.
printf 'name = "hostile"\nversion = "1.0.0"\nentry = "hostile"\n\n[[commands]]\nname = "bpf"\n' >/tmp/hostile.toml
hostile=$(package hostile /tmp/hostile.toml "$REPO/target/debug/hostile")
# Signed as a publisher does: pack, then sign the content list with ssh-keygen.
signed() {
  "$CLI" plugin pack "$1" -o "$1.pxp" >/dev/null || fail "plugin pack $1"
  "$CLI" plugin contents "$1.pxp" | ssh-keygen -q -Y sign -n plexichat-plugin -f "$key" >"$1.pxp.sig" ||
    fail "ssh-keygen -Y sign $1"
  echo "$1.pxp"
}
if out=$("$CLI" plugin install "$hello" 2>&1); then fail "an unsigned package was installed: $out"; fi
echo "$out" | grep -q "unsigned" || fail "the unsigned package was refused, but not as unsigned: $out"
hello=$(signed "$hello") || fail "signing hello: $hello"
hostile=$(signed "$hostile") || fail "signing hostile: $hostile"
"$CLI" plugin install "$hello" >/dev/null || fail "plugin install hello"
"$CLI" plugin approve hello --comment "vm test" >/dev/null || fail "plugin approve hello"
"$CLI" plugin enable hello >/dev/null || fail "plugin enable hello"
"$CLI" plugin install "$hostile" >/dev/null || fail "plugin install hostile"
"$CLI" plugin enable hostile >/dev/null || fail "plugin enable hostile"
wait_for 60 plugin_running hello || fail "hello is not running"
wait_for 60 plugin_running hostile || fail "hostile is not running"
# Confinement checked from the kernel's side, as the unit's capabilities allow it.
"$CLI" plugin disable hello >/dev/null || fail "plugin disable hello"
out=$("$CLI" plugin enable hello --verify-security 2>&1) || fail "plugin enable --verify-security: $out"
wait_for 60 plugin_running hello || fail "hello is not running after --verify-security"
pid=$(plugin_pid hello)
ok "hello runs confined as pid $pid, verified: $(echo "$out" | tr '\n' ' ' | cut -c1-160)"

# ---- the PlexiChat server's user reaches the socket; others do not ---------------------
greeting=$(runuser -u "$SERVER_USER" -- "$CLI" plugin invoke hello greet PlexiChat 2>&1) ||
  fail "the server user could not invoke hello: $greeting"
echo "$greeting" | grep -q PlexiChat || fail "unexpected greet output: $greeting"
if out=$(runuser -u nobody -- "$CLI" plugin list 2>&1); then
  fail "nobody (not in group plexichat) reached the socket: $out"
fi
echo "$out" | grep -q "Permission denied" || fail "nobody was refused, but not by the socket's mode: $out"
ok "$SERVER_USER (groups plexichat, plexichat-server) invoked hello: '$greeting'; nobody: permission denied"

# ---- reload keeps every plugin --------------------------------------------------------
systemctl reload "$UNIT" || fail "systemctl reload"
[ "$(plugin_pid hello)" = "$pid" ] || fail "hello's pid changed across the reload"
wait_for 10 sh -c "journalctl -u $UNIT --no-pager | grep -q 'reloaded'" || fail "no reload line in the journal"
ok "systemctl reload: hello still pid $pid"

# ---- the journal: priorities and fields -------------------------------------------------
# The plugin answers with the errno the attack got; the invoke itself must succeed.
attack=$("$CLI" plugin invoke hostile bpf 2>&1) || fail "plugin invoke hostile bpf: $attack"
denied_syscall() { journalctl -u "$UNIT" -p warning PLEXICHAT_PLUGIN=hostile --no-pager -o cat | grep 'seccomp denied a syscall'; }
wait_for 10 denied_syscall || fail "journalctl -p warning shows no denied syscall of hostile"
denied=$(denied_syscall | tail -n1)
[ -n "$(journalctl PLEXICHAT_PLUGIN=hello --no-pager -o cat)" ] || fail "journalctl PLEXICHAT_PLUGIN=hello is empty"
ok "journalctl -p warning: '$denied'; PLEXICHAT_PLUGIN=hello has $(journalctl PLEXICHAT_PLUGIN=hello -o cat | wc -l) lines"

# ---- removing a plugin deletes its data (files owned by its uid) ----------------------
"$CLI" plugin disable hostile >/dev/null || fail "plugin disable hostile"
"$CLI" plugin remove --yes hostile >/dev/null || fail "plugin remove hostile"
ls /var/lib/plexichat/data/hostile >/dev/null 2>&1 && fail "hostile's data directory is left"
ok "plugin remove: hostile and its data gone"

# ---- one supervisor per state directory ----------------------------------------------
main=$(main_pid)
if out=$(timeout 30 /usr/local/bin/plexichat-supervisor --config /etc/plexichat/supervisor.toml 2>&1); then
  fail "a second supervisor started: $out"
fi
echo "$out" | grep -q "pid $main" || fail "the second instance did not name pid $main: $out"
[ "$(plugin_pid hello)" = "$pid" ] || fail "the second instance disturbed hello"
ok "a second instance refused: $(echo "$out" | grep "pid $main" | tail -n1)"

# ---- SIGKILL: no plugin survives its supervisor; systemd restarts it -----------------
systemctl kill -s KILL "$UNIT"
wait_for 20 sh -c "! kill -0 $pid" || fail "hello (pid $pid) survived its supervisor's SIGKILL"
wait_for 60 sh -c "[ \"\$(systemctl show -p MainPID --value $UNIT)\" != 0 ] && [ \"\$(systemctl show -p MainPID --value $UNIT)\" != $main ] && systemctl is-active -q $UNIT" ||
  fail "systemd did not restart the service after SIGKILL"
wait_for 60 plugin_running hello || fail "hello did not come back after the restart"
ok "systemctl kill -s KILL: old plugins gone, restarted as pid $(main_pid), hello back as pid $(plugin_pid hello) (NRestarts=$(systemctl show -p NRestarts --value $UNIT))"

# ---- stop: nothing left --------------------------------------------------------------
systemctl stop "$UNIT" || fail "systemctl stop"
wait_for 10 no_plugin_process || fail "plugin processes left after stop: $(plugin_processes)"
[ "$(main_pid)" = 0 ] || fail "MainPID is $(main_pid) after stop"
[ ! -e /sys/fs/cgroup/system.slice/$UNIT.service ] || fail "the unit's cgroup is left after stop"
[ ! -e /run/plexichat/supervisor.sock ] || fail "the socket is left after stop"
journalctl -u "$UNIT" --no-pager -o cat | grep -q "stopping plugins" || fail "no stop line in the journal"
ok "systemctl stop: no process, no cgroup, no socket"
echo "all service-path checks passed"
