# PlexiChat plugin supervisor: build, run the demo, test, lint, install.
CARGO ?= cargo
PREFIX ?= /usr/local

.PHONY: all build run test lint fmt install clean bench bench-spawn bench-broker release

all: build

## Build the daemon, the CLI, the example and test plugins (debug).
build:
	$(CARGO) build --workspace --bins --examples

## Start the supervisor in the foreground (embedded default config, state under ./var)
## with the hello demo plugin installed, approved, enabled and answering.
run: build
	./scripts/demo.sh

## Every test: unit tests beside the code, the end-to-end suites in tests/, and the
## cgroup v2 suite inside a VM with a pure cgroup v2 hierarchy.
test: build
	$(CARGO) test --workspace
	./scripts/vm-test.sh

## Benchmarks (release build), each against a baseline measured in the same run.
bench: bench-spawn bench-broker

release:
	$(CARGO) build --release -p plexichat-supervisor -p plexichat-bench --bins
	$(CARGO) build --release -p plexichat-e2e --bin echo_plugin

## Spawn-to-ready of a confined plugin vs unconfined vs bwrap /bin/true (needs bubblewrap).
bench-spawn: release
	@command -v bwrap >/dev/null || { echo "bench-spawn needs bwrap: apt-get install bubblewrap"; exit 1; }
	./target/release/bench_spawn

## A checked, audited no-op broker call vs a raw socketpair and a bare tonic echo;
## then the audit writer alone.
bench-broker: release
	./target/release/bench_broker

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Install the release binaries, policies and systemd unit.
install:
	$(CARGO) build --release -p plexichat-supervisor
	install -D -m 0755 target/release/plexichat-supervisor $(DESTDIR)$(PREFIX)/bin/plexichat-supervisor
	install -D -m 0755 target/release/plexichat $(DESTDIR)$(PREFIX)/bin/plexichat
	install -D -m 0644 policies/permissions.toml $(DESTDIR)/etc/plexichat/policies/permissions.toml
	install -D -m 0640 systemd/supervisor.toml $(DESTDIR)/etc/plexichat/supervisor.toml
	install -D -m 0644 systemd/plexichat-supervisor.service $(DESTDIR)/etc/systemd/system/plexichat-supervisor.service
	install -D -m 0644 systemd/plexichat.sysusers $(DESTDIR)/usr/lib/sysusers.d/plexichat.conf
	install -D -m 0644 systemd/plexichat.tmpfiles $(DESTDIR)/usr/lib/tmpfiles.d/plexichat.conf
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/plexichat/README.md

clean:
	$(CARGO) clean
	rm -rf var
