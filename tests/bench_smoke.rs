//! The comparison harness of `benches/compare.rs` at tiny sizes, so it cannot rot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

#[path = "../benches/compare.rs"]
mod compare;

#[test]
fn the_comparison_harness_runs_at_smoke_scale() {
    // rsync and Syncthing are the benchmarks' peers, not QSync's needs: without them this
    // skips (CI installs them with ./scripts/bench-deps.sh, so there it runs).
    for peer in ["rsync", "syncthing"] {
        if std::process::Command::new(peer)
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: {peer} is not installed (./scripts/bench-deps.sh or `just bench-compare` installs it)");
            return;
        }
    }
    let rows = compare::run(compare::SMOKE);
    let table = compare::table(compare::SMOKE, &rows);
    println!("{table}");
    // Each live row twice: the first drop on a new pair, then a second one.
    assert_eq!(rows.len(), 18, "{table}");
}
