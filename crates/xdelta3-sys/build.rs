//! Compiles the vendored xdelta3 C source into a static library with the `cc` crate.
//!
//! The configuration xdelta3's autoconf would find is derived from the target instead of by
//! compiling and running test programs, so cross builds work too. With the `reference-cli`
//! feature the same source is also built as the `xdelta3` command-line program, whose path
//! the crate exposes as `REFERENCE_CLI`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SRC: &str = "xdelta3";

fn main() {
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=build.rs");

    let defines = defines();
    let mut lib = cc::Build::new();
    lib.include(SRC)
        .file(format!("{SRC}/xdelta3.c"))
        .warnings(false);
    for (key, value) in &defines {
        lib.define(key, Some(value.as_str()));
    }
    lib.compile("xdelta3");

    if env::var_os("CARGO_FEATURE_REFERENCE_CLI").is_some() {
        build_cli(&defines);
    }
}

/// The preprocessor settings: the sizes of C's integer types on the target, the secondary
/// compressors xdelta3 ships (no external compression programs), 64-bit file offsets.
fn defines() -> Vec<(&'static str, String)> {
    let pointer_bytes: u32 = env::var("CARGO_CFG_TARGET_POINTER_WIDTH")
        .ok()
        .and_then(|w| w.parse::<u32>().ok())
        .map_or(8, |bits| bits / 8);
    let windows = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "windows");
    // LP64 on 64-bit Unix; `long` stays 4 bytes on Windows (LLP64) and on 32-bit targets.
    let long_bytes = if windows { 4 } else { pointer_bytes };
    let mut defines = vec![
        ("SIZEOF_SIZE_T", pointer_bytes.to_string()),
        ("SIZEOF_UNSIGNED_INT", "4".to_string()),
        ("SIZEOF_UNSIGNED_LONG", long_bytes.to_string()),
        ("SIZEOF_UNSIGNED_LONG_LONG", "8".to_string()),
        ("SECONDARY_DJW", "1".to_string()),
        ("SECONDARY_FGK", "1".to_string()),
        ("EXTERNAL_COMPRESSION", "0".to_string()),
        ("XD3_USE_LARGEFILE64", "1".to_string()),
        ("SHELL_TESTS", "0".to_string()),
    ];
    if windows {
        defines.push(("XD3_WIN32", "1".to_string()));
    }
    defines
}

/// Links xdelta3.c with its `main` (XD3_MAIN) into `$OUT_DIR/xdelta3`.
fn build_cli(defines: &[(&'static str, String)]) {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let exe = out_dir.join(if cfg!(windows) {
        "xdelta3.exe"
    } else {
        "xdelta3"
    });
    let compiler = cc::Build::new().opt_level(2).warnings(false).get_compiler();
    let mut cmd: Command = compiler.to_command();
    cmd.arg("-I").arg(SRC);
    for (key, value) in defines {
        cmd.arg(format!("-D{key}={value}"));
    }
    cmd.arg("-DXD3_MAIN=1")
        .arg(format!("{SRC}/xdelta3.c"))
        .arg("-o")
        .arg(&exe);
    let status = cmd.status();
    if !matches!(status, Ok(s) if s.success()) {
        println!("cargo:warning=building the reference xdelta3 program failed: {status:?}");
        std::process::exit(1);
    }
    println!(
        "cargo:rustc-env=XDELTA3_SYS_REFERENCE_CLI={}",
        exe.display()
    );
}
