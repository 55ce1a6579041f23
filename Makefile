# PlexiChat plugin supervisor: build, run the demo, test, lint, install.
CARGO ?= cargo
PREFIX ?= /usr/local
# install: which build's binaries (release; the VM test installs the debug build).
PROFILE ?= release
# The commit release builds report in plexichat_build_info (empty outside a git
# checkout). Debug builds leave it out, so switching HEAD does not rebuild them.
GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null)

.PHONY: all build auditable run test lint python-stubs fmt docs install uninstall clean bench bench-spawn bench-broker release

all: build

## Build the daemon, the CLI, the example and test plugins (debug).
build:
	$(CARGO) build --workspace --bins --examples

## The test plugin built with `cargo auditable` (its binary embeds its dependency list)
## at target/auditable/audited_plugin, for the advisories tests. Its artifacts sit beside
## the plain build's (cargo keys them by the wrapper), so neither rebuilds the other; the
## copy keeps it when a plain build re-links target/debug/audited_plugin.
auditable:
	@command -v cargo-auditable >/dev/null || { echo "make auditable needs cargo-auditable: cargo install cargo-auditable --locked"; exit 1; }
	$(CARGO) auditable build -p plexichat-e2e --bin audited_plugin
	mkdir -p target/auditable
	cp target/debug/audited_plugin target/auditable/audited_plugin.tmp
	mv target/auditable/audited_plugin.tmp target/auditable/audited_plugin

## Start the supervisor in the foreground (embedded default config, state under ./var)
## with the hello demo plugin installed, approved, enabled and answering.
run: build
	@./scripts/python-sdk-bundle.sh var/python-sdk || echo "make run: WARNING: no Python SDK bundle (python3 needs grpclib and protobuf: see .ci/run); the demo runs, Python plugins will be refused"
	./scripts/demo.sh

## Every test: unit tests beside the code, the end-to-end suites in tests/ (Python
## plugins get the SDK bundle built into target/python-sdk first), the SDK's
## docs built warning-free (every public item is documented), the
## cgroup v2 suite inside a VM with a pure cgroup v2 hierarchy, and the service path
## (make install, systemd as PID 1) in a second VM. The `cargo auditable` test plugin
## is built first (the advisories tests read it).
test: build auditable
	./scripts/python-sdk-bundle.sh target/python-sdk
	$(CARGO) test --workspace
	cd plugin-sdk-python && python3 -m pytest -q -p no:cacheprovider
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -p plexichat-plugin-sdk --no-deps
	./scripts/vm-test.sh
	./scripts/vm-service-test.sh

## Benchmarks (release build), each against a baseline measured in the same run.
bench: bench-spawn bench-broker

release:
	PLEXICHAT_GIT_COMMIT=$(GIT_COMMIT) $(CARGO) build --release -p plexichat-supervisor -p plexichat-bench --bins
	$(CARGO) build --release -p plexichat-e2e --bin echo_plugin
	./scripts/python-sdk-bundle.sh target/python-sdk

## Spawn-to-ready of a confined plugin vs unconfined vs bwrap /bin/true (needs bubblewrap);
## the Python hello confined vs python3 -I -S -c pass.
bench-spawn: release
	@command -v bwrap >/dev/null || { echo "bench-spawn needs bwrap: apt-get install bubblewrap"; exit 1; }
	./target/release/bench_spawn

## A checked, audited no-op broker call vs a raw socketpair and a bare tonic echo;
## then the audit writer alone; then the Python SDK's call vs a bare grpclib echo.
bench-broker: release
	./target/release/bench_broker

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd python && ruff check . && ruff format --check . && mypy
	cd plugin-sdk-python && ruff check . && ruff format --check . && mypy
	cd tests/python-plugins && ruff check . && ruff format --check .

## Regenerate the Python client's and plugin SDK's stubs after a change to the protos
## (a test fails while they are stale).
python-stubs:
	./scripts/python-stubs.sh

fmt:
	$(CARGO) fmt --all

## Regenerate docs/api.md from the protos' comments (a test fails when it is stale).
docs:
	PLEXICHAT_WRITE_API_DOCS=1 $(CARGO) test -p plexichat-broker-proto --test contract docs_api_md

## Install the binaries (stripped of debug info), policies, configuration, the unit
## generated for PREFIX, sysusers and tmpfiles; safe to repeat: an edited config or
## policy is kept and the shipped one put beside it as .dist (see scripts/install.sh).
install:
ifeq ($(PROFILE),release)
	PLEXICHAT_GIT_COMMIT=$(GIT_COMMIT) $(CARGO) build --release -p plexichat-supervisor --bins
else
	$(CARGO) build -p plexichat-supervisor --bins
endif
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" PROFILE="$(PROFILE)" ./scripts/install.sh install

## Remove what install added; state, logs and edited configuration stay.
uninstall:
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" ./scripts/install.sh uninstall

clean:
	$(CARGO) clean
	rm -rf var
