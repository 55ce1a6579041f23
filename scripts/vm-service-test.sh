#!/usr/bin/env bash
# scripts/vm-service-test.sh: the service-path test — `make install` into a staging tree, then
# tests/vm/service_path.sh in a VM booted with systemd as PID 1 (scripts/vm-systemd.sh).
# `make test` runs it. Prints one SKIPPED line (exit 0) where no VM can run, unless CI=true.
set -uo pipefail
cd "$(dirname "$0")/.."

for f in target/debug/examples/hello target/debug/hostile; do
  [ -x "$f" ] || { echo "vm-service-test: $f is not built (make build)" >&2; exit 1; }
done
stage=$(mktemp -d "${TMPDIR:-/tmp}/plexichat-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
# The tree is copied onto the guest's / with its modes: the staging root must look like /.
chmod 0755 "$stage"
# The debug build: what the tests built already (a release build would add minutes).
make -s install DESTDIR="$stage" PROFILE=debug || { echo "vm-service-test: make install failed" >&2; exit 1; }

start=$(date +%s)
scripts/vm-systemd.sh --timeout "${VM_TIMEOUT:-900}" --tmpfs /var/lib/plexichat -- tests/vm/service_path.sh "$stage"
status=$?
echo "vm-service-test: the service path in the VM took $(( $(date +%s) - start )) s (exit $status)"
if [ "$status" -eq 77 ]; then
  echo "systemd service-path VM test SKIPPED: no VM can run on this machine (see the vm-systemd line above)"
  exit 0
fi
exit "$status"
