#!/usr/bin/env bash
# `make run`: the supervisor in the foreground with its embedded default config
# (everything under ./var), and the hello demo plugin installed, approved, enabled
# and answering a command and an event. Ctrl-C stops the supervisor and the plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cli="$root/target/debug/plexichat"
export PLEXICHAT_SOCKET="$root/var/run/supervisor.sock"

pkg="$root/var/demo-plugin"
rm -rf "$pkg" && mkdir -p "$pkg"
cp plugin-sdk/examples/hello/plugin.toml "$pkg/"
cp target/debug/examples/hello "$pkg/hello"

# The embedded config accepts only signed packages: the demo is its own publisher,
# with a key made here and seeded into the trust store offline by root (a second
# admin adds every later key: `plexichat trust add-key`).
command -v ssh-keygen >/dev/null ||
  { echo "make run: the demo signs its package with ssh-keygen: apt-get install openssh-client" >&2; exit 1; }
key="$root/var/demo-publisher"
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C 'PlexiChat demo publisher' -f "$key"
"$root/target/debug/plexichat-supervisor" --bootstrap-key "$key.pub" \
  --publisher "PlexiChat demo" --key-plugins hello

demo() {
  for _ in $(seq 100); do "$cli" whoami >/dev/null 2>&1 && break; sleep 0.1; done
  echo "== demo: install, review, enable =="
  # A rebuilt binary no longer matches the old pin: start the demo fresh.
  "$cli" plugin remove --yes hello >/dev/null 2>&1 || true
  echo "== demo: pack, sign (ssh-keygen -Y sign), install =="
  "$cli" plugin pack "$pkg" -o "$root/var/hello.pxp"
  "$cli" plugin contents "$root/var/hello.pxp" |
    ssh-keygen -q -Y sign -n plexichat-plugin -f "$key" >"$root/var/hello.pxp.sig"
  "$cli" plugin install "$root/var/hello.pxp"
  "$cli" plugin pending
  "$cli" plugin approve hello --comment "demo: approved by make run" --expires-in 7d
  "$cli" plugin enable hello
  for _ in $(seq 100); do
    "$cli" plugin list | grep -q ' running ' && break
    sleep 0.1
  done
  "$cli" plugin list
  echo "== demo: the plugin answers =="
  "$cli" plugin invoke hello greet PlexiChat
  echo "== demo: what confines it =="
  "$cli" security plugin-status
  (timeout 3 "$cli" event watch 'plugin.hello.*' || true) &
  sleep 0.5
  "$cli" event publish chat.message '{"text":"hi"}'
  wait
  echo "== the supervisor keeps running; in another shell: =="
  echo "   PLEXICHAT_SOCKET=$PLEXICHAT_SOCKET $cli plugin show hello"
  echo "   Ctrl-C here stops it."
}

demo &
exec "$root/target/debug/plexichat-supervisor"
