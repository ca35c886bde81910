# QSync's tasks. Set-up once with ./scripts/setup.sh (it also installs `just`).
set shell := ["bash", "-euo", "pipefail", "-c"]

# Start QSync: the daemon and the terminal menu (extra arguments go to qsync).
run *ARGS: deps
    cargo run --release -p qsync -- {{ARGS}}

# The whole test suite, as CI runs it.
test: deps
    cargo test --workspace

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# What CI runs.
ci:
    bash .ci/run

# Criterion benches (long; not run by CI).
bench: deps
    cargo bench --workspace

# QSync against rsync and Syncthing on this machine, full sizes (about 10 minutes); writes benches/results.md.
bench-compare: deps
    cargo bench --bench compare

# Fuzz the wire parsers (stable toolchain: RUSTC_BOOTSTRAP lets it take sanitizer flags).
fuzz-wire SECONDS="60": fuzz-tool
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run wire -- -max_total_time={{SECONDS}}

# Licenses, advisories and duplicate versions with cargo-deny (the advisory DB needs GitHub).
deny:
    command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
    cargo deny check

[private]
deps:
    ./scripts/setup.sh --no-just

[private]
fuzz-tool:
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

# Fuzz the patch parser and applier.
fuzz-delta SECONDS="60": fuzz-tool
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run delta -- -max_total_time={{SECONDS}}

# Fuzz app archives (unpacking) and app descriptions.
fuzz-apps SECONDS="60": fuzz-tool
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run apps -- -max_total_time={{SECONDS}}

# Fuzz the Magasin's store index parser.
fuzz-index SECONDS="60": fuzz-tool
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run index -- -max_total_time={{SECONDS}}
