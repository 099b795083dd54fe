# tollgate: the two set-up commands are `make up` (local gateway stack) and `make test` (every test).
# Both install what they need into the project (wasm target, ./.venv, ./node_modules).

SHELL := /bin/bash
FILTERS := jwt-auth prompt-guard secret-mask key-inject
WASM_PACKAGES := $(addprefix -p tollgate-,$(FILTERS)) -p tollgate-probe
WASM_DIR := $(CURDIR)/target/wasm32-wasip1/release
VENV := $(CURDIR)/.venv

export TOLLGATE_WASM_DIR := $(WASM_DIR)
export TOLLGATE_VENV := $(VENV)
export TOLLGATE_ROOT := $(CURDIR)

.PHONY: test up bench wasm toolchain venv node lint fmt clean compose-config debs

## test: everything CI runs — lint, wasm builds (once), unit, harness, end-to-end and SDK tests.
test: toolchain venv node lint wasm debs fuzz-smoke
	cargo test --workspace --locked

## up: the local gateway stack in the foreground (Ctrl-C stops every process).
up: toolchain venv node wasm
	cargo build --locked --release -p tollgate-mock
	bash scripts/up.sh

## bench: criterion benches through the harness and the load benchmark through Envoy.
bench: toolchain venv node wasm
	bash scripts/bench.sh

toolchain:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt

## wasm: every filter (and the harness's probe fixture) for wasm32-wasip1, then the bundle (the
## four in one module) in its own cargo run and target directory, copied next to the others: in
## one run cargo would unify the filters' features and link their standalone entry points
## (feature `plugin`) into the bundle, and in one target directory the two builds of each
## filter would overwrite each other's cdylib and rebuild every time.
wasm: toolchain
	cargo build --locked --release --target wasm32-wasip1 --lib $(WASM_PACKAGES)
	CARGO_TARGET_DIR=$(CURDIR)/target/bundle cargo build --locked --release --target wasm32-wasip1 --lib -p tollgate-bundle
	cp -p target/bundle/wasm32-wasip1/release/tollgate_bundle.wasm $(WASM_DIR)/

## debs: the Debian tools of the OCI tests (cli/tests): docker-registry (the CNCF distribution
## registry) and skopeo, installed with apt-get when missing and running as root. Otherwise those
## tests skip loudly (and fail under CI=true).
debs:
	@if command -v skopeo >/dev/null 2>&1 && [ -x /usr/bin/docker-registry ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry skopeo; \
	else echo "make debs: docker-registry or skopeo missing and not root: the OCI tests will skip (sudo make debs installs them)"; fi

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

node: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## compose-config: render target/compose/envoy.yaml for docker-compose.yml (same template and renderer as the tests).
compose-config: wasm
	cargo run -q --locked -p tollgate-tests --bin tollgate-render -- --preset compose -o target/compose/envoy.yaml

lint: toolchain
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV) node_modules

## fuzz-smoke: build the cargo-fuzz targets once (fuzz/, release, fuzz/target) and run each for
## FUZZ_SMOKE_SECONDS; any crash fails. fuzz: the long run, FUZZ_SECONDS per target
## (docs/fuzzing.md). cargo-fuzz is installed into .tools/ when missing; libFuzzer needs nightly
## flags, which RUSTC_BOOTSTRAP=1 allows on the stable toolchain.
.PHONY: fuzz fuzz-smoke fuzz-build fuzz-lock
FUZZ_TARGETS := jwt_token jwks messages_body sse_stream path verify_differential
FUZZ_SMOKE_SECONDS ?= 5
FUZZ_SECONDS ?= 600
FUZZ_FLAGS ?= --sanitizer none --debug-assertions
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ := $(CURDIR)/.tools/bin/cargo-fuzz
FUZZ := RUSTC_BOOTSTRAP=1 PATH="$(CURDIR)/.tools/bin:$$PATH" cargo fuzz

$(CARGO_FUZZ):
	cargo install --locked --quiet cargo-fuzz --version $(CARGO_FUZZ_VERSION) --root $(CURDIR)/.tools

# fuzz/Cargo.lock pins the workspace's versions (cargo fuzz has no --locked): when a filter's
# dependencies changed, it is refreshed from Cargo.lock (commit the result).
fuzz-build: $(CARGO_FUZZ)
	@cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml > /dev/null 2>&1 || { \
	  echo "fuzz/Cargo.lock is stale: refreshing it from Cargo.lock (commit it)"; $(MAKE) --no-print-directory fuzz-lock; }
	$(FUZZ) build $(FUZZ_FLAGS)

## fuzz-lock: refresh fuzz/Cargo.lock from the workspace's Cargo.lock (after a dependency change).
fuzz-lock:
	cp Cargo.lock fuzz/Cargo.lock
	cargo metadata --format-version 1 --manifest-path fuzz/Cargo.toml > /dev/null

# New inputs go to fuzz/target/corpus/<target> (not committed); fuzz/corpus/<target> holds the seeds.
fuzz-smoke: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/target/corpus/$$t && \
	  $(FUZZ) run $(FUZZ_FLAGS) $$t fuzz/target/corpus/$$t fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SMOKE_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>fuzz/target/$$t.smoke.log \
	    && grep -h -E '^(stat::number_of_executed_units|Done)' fuzz/target/$$t.smoke.log | sed "s/^/$$t: /" \
	    || { tail -n 60 fuzz/target/$$t.smoke.log; echo "fuzz target $$t failed (input in fuzz/artifacts/$$t/)"; exit 1; }; \
	done

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/target/corpus/$$t && \
	  $(FUZZ) run $(FUZZ_FLAGS) $$t fuzz/target/corpus/$$t fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tee fuzz/target/$$t.log | grep --line-buffered -E '^(#[0-9]+.*(pulse|DONE)|Done|stat::number|==)'; \
	  test $${PIPESTATUS[0]} -eq 0 || { echo "fuzz target $$t failed (input in fuzz/artifacts/$$t/)"; exit 1; }; \
	done
