# QSync's tasks. Nothing to set up first: the Rust toolchain and a C compiler are enough.
set shell := ["bash", "-euo", "pipefail", "-c"]

# Start QSync: the daemon and the terminal menu (extra arguments go to qsync).
run *ARGS:
    cargo run --release -- {{ARGS}}

# The whole test suite, as CI runs it.
test:
    cargo test --workspace

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# What CI runs.
ci:
    bash .ci/run

# Criterion benches (long; not run by CI).
bench: bench-deps
    cargo bench --workspace

# QSync against rsync and Syncthing on this machine, full sizes (about 10 minutes); writes benches/results.md.
bench-compare: bench-deps
    cargo bench --bench compare

# Regenerate xdelta3-sys's pre-generated bindings (maintainers only: needs libclang, installed here with apt).
bindings:
    command -v bindgen >/dev/null || cargo install --locked bindgen-cli
    dpkg-query -W libclang-dev >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq libclang-dev >/dev/null; }
    bindgen crates/xdelta3-sys/xdelta3/xdelta3.h \
        --allowlist-function 'xd3_encode_memory|xd3_decode_memory' \
        --output crates/xdelta3-sys/src/bindings.rs \
        -- -DSIZEOF_SIZE_T=8 -DSIZEOF_UNSIGNED_INT=4 -DSIZEOF_UNSIGNED_LONG=8 -DSIZEOF_UNSIGNED_LONG_LONG=8 \
           -DXD3_USE_LARGEFILE64=1 -DSECONDARY_DJW=1 -DSECONDARY_FGK=1 -DEXTERNAL_COMPRESSION=0

# Fuzz the wire parsers (stable toolchain: RUSTC_BOOTSTRAP lets it take sanitizer flags).
fuzz-wire SECONDS="60": fuzz-tool
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run wire -- -max_total_time={{SECONDS}}

# Licenses, advisories and duplicate versions with cargo-deny (the advisory DB needs GitHub).
deny:
    command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
    cargo deny check

# rsync and Syncthing, which the benchmarks measure against (apt).
[private]
bench-deps:
    ./scripts/bench-deps.sh

[private]
fuzz-tool:
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

# Fuzz the patch parser and applier.
fuzz-delta SECONDS="60": fuzz-tool
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run delta -- -max_total_time={{SECONDS}}

# Fuzz block signatures from a peer, and patches made from them.
fuzz-signature SECONDS="60": fuzz-tool
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run signature -- -max_total_time={{SECONDS}}

# Fuzz app archives (unpacking) and app descriptions.
fuzz-apps SECONDS="60": fuzz-tool
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run apps -- -max_total_time={{SECONDS}}

# Fuzz the sync core with a peer's messages.
fuzz-core SECONDS="60": fuzz-tool
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run core -- -max_total_time={{SECONDS}}

# Fuzz the receive path: a linked peer's messages against a real folder; nothing outside
# the folder may change.
fuzz-receive SECONDS="60": fuzz-tool
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run receive -- -max_total_time={{SECONDS}}

# Fuzz the Magasin's store index parser.
fuzz-index SECONDS="60": fuzz-tool
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run index -- -max_total_time={{SECONDS}}

fuzz-signed-index SECONDS="60": fuzz-tool
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run signed_index -- -max_total_time={{SECONDS}}

# The sync rules' simulator: SEEDS random schedules one after another (release build); a
# failure prints its seed. Replay one: QSYNC_SIM_SEED=N cargo test -p qsync-core --test simulator one_seed -- --ignored --nocapture
sim SEEDS="1000000" FROM="0":
    QSYNC_SIM_SEEDS={{SEEDS}} QSYNC_SIM_FROM={{FROM}} cargo test --release -p qsync-core --test simulator many_seeds -- --ignored --nocapture
