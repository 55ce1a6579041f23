#!/usr/bin/env bash
# scripts/install.sh: `make install` and `make uninstall` — put the built binaries, policies,
# configuration and systemd files in place, never overwriting what an operator edited.
#
# Usage: scripts/install.sh install|uninstall
# Environment (from make): DESTDIR, PREFIX (/usr/local), PROFILE (release). The configuration
# always goes to /etc/plexichat: the shipped supervisor.toml and the unit name it.
#
# install: binaries are stripped of debug info (symbols kept for backtraces); the unit is
#   generated for PREFIX. A config or policy file that exists and differs from the
#   shipped one is left alone: the shipped one goes beside it as FILE.dist and the
#   difference is printed. Every file written is listed with its SHA-256 in
#   PREFIX/share/plexichat/installed-files, which uninstall reads.
# uninstall: removes what install added; keeps state (/var/lib/plexichat), logs
#   (/var/log/plexichat) and any config or policy file that was edited since.
set -euo pipefail
cd "$(dirname "$0")/.."

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
PROFILE=${PROFILE:-release}
BINDIR=$PREFIX/bin
# systemd reads units, sysusers and tmpfiles from PREFIX/lib for PREFIX /usr and /usr/local.
LIBDIR=$PREFIX/lib
DOCDIR=$PREFIX/share/doc/plexichat
MANIFEST=$PREFIX/share/plexichat/installed-files
CONFDIR=/etc/plexichat

die() {
  echo "install: $*" >&2
  exit 1
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# One line per file install wrote: "<sha256> <kind> <path without DESTDIR>".
record() { printf '%s %s %s\n' "$(sha "$DESTDIR$2")" "$1" "$2" >>"$NEW_MANIFEST"; }

# A file that is ours to replace (binaries, unit, docs).
put() {
  local mode=$1 src=$2 dst=$3
  install -D -m "$mode" "$src" "$DESTDIR$dst"
  record file "$dst"
}

# A file an operator may edit: never overwritten once it differs from what we ship.
put_config() {
  local mode=$1 src=$2 dst=$3
  local target=$DESTDIR$dst
  if [ -e "$target" ] && ! cmp -s "$src" "$target"; then
    install -D -m "$mode" "$src" "$target.dist"
    record dist "$dst.dist"
    echo "install: kept $dst (edited); the shipped version is $dst.dist:"
    diff -u --label "$dst" --label "$dst.dist" "$target" "$target.dist" | sed 's/^/    /' || true
    # The kept file stays ours to remove only if it is still what we once shipped.
    grep -E " config $dst\$" "$OLD_MANIFEST" >>"$NEW_MANIFEST" 2>/dev/null || true
    return
  fi
  install -D -m "$mode" "$src" "$target"
  rm -f "$target.dist"
  record config "$dst"
}

stripped() {
  local bin=target/$PROFILE/$1 out=$STAGE/$1
  [ -x "$bin" ] || die "$bin is not built (make install builds it; PROFILE=$PROFILE)"
  strip --strip-debug -o "$out" "$bin"
  echo "$out"
}

unit() {
  sed -e "s|@BINDIR@|$BINDIR|g" -e "s|@DOCDIR@|$DOCDIR|g" systemd/plexichat-supervisor.service.in >"$STAGE/plexichat-supervisor.service"
  echo "$STAGE/plexichat-supervisor.service"
}

do_install() {
  STAGE=$(mktemp -d)
  trap 'rm -rf "$STAGE"' EXIT
  OLD_MANIFEST=$DESTDIR$MANIFEST
  NEW_MANIFEST=$STAGE/manifest
  : >"$NEW_MANIFEST"
  [ -e "$OLD_MANIFEST" ] || OLD_MANIFEST=/dev/null

  put 0755 "$(stripped plexichat-supervisor)" "$BINDIR/plexichat-supervisor"
  put 0755 "$(stripped plexichat)" "$BINDIR/plexichat"
  put_config 0640 systemd/supervisor.toml "$CONFDIR/supervisor.toml"
  put_config 0644 policies/permissions.toml "$CONFDIR/policies/permissions.toml"
  for f in policies/seccomp/*; do
    put_config 0644 "$f" "$CONFDIR/policies/seccomp/$(basename "$f")"
  done
  put 0644 "$(unit)" "$LIBDIR/systemd/system/plexichat-supervisor.service"
  put 0644 systemd/plexichat.sysusers "$LIBDIR/sysusers.d/plexichat.conf"
  put 0644 systemd/plexichat.tmpfiles "$LIBDIR/tmpfiles.d/plexichat.conf"
  put 0644 README.md "$DOCDIR/README.md"

  # Files the previous install wrote that this one did not (a policy no longer
  # shipped, say) go, unless edited.
  remove_listed "$OLD_MANIFEST" "$NEW_MANIFEST"
  install -D -m 0644 "$NEW_MANIFEST" "$DESTDIR$MANIFEST"
  echo "install: $(wc -l <"$NEW_MANIFEST") files under ${DESTDIR:-/} (listed in $MANIFEST)"
  [ -n "$DESTDIR" ] || echo "install: next: systemd-sysusers; systemd-tmpfiles --create; systemctl daemon-reload"
}

# Remove every file in manifest $1 that is not in $2 (by path) and is unchanged.
remove_listed() {
  local listed=$1 keep=${2:-/dev/null} hash kind path
  while read -r hash kind path; do
    [ -n "$path" ] || continue
    grep -qE " $path\$" "$keep" && continue
    local target=$DESTDIR$path
    [ -e "$target" ] || continue
    if [ "$kind" = config ] && [ "$(sha "$target")" != "$hash" ]; then
      echo "uninstall: kept $path (edited since it was installed)"
      continue
    fi
    rm -f "$target"
  done <"$listed"
  # Only directories that are ours, and only when empty.
  local d
  for d in "$CONFDIR/policies/seccomp" "$CONFDIR/policies" "$DOCDIR" "$(dirname "$MANIFEST")"; do
    rmdir "$DESTDIR$d" 2>/dev/null || true
  done
}

do_uninstall() {
  local manifest=$DESTDIR$MANIFEST
  [ -e "$manifest" ] || die "$manifest not found: nothing was installed under PREFIX=$PREFIX"
  remove_listed "$manifest"
  rm -f "$manifest"
  rmdir "$(dirname "$manifest")" 2>/dev/null || true
  echo "uninstall: done; state and logs are kept (/var/lib/plexichat, /var/log/plexichat)"
}

case "${1:-}" in
  install) do_install ;;
  uninstall) do_uninstall ;;
  *) die "usage: scripts/install.sh install|uninstall" ;;
esac
