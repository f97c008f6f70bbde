//! Link the unwinder statically, so our programs load one shared library
//! (glibc) at start, not two.
//!
//! Rust programs for `*-linux-gnu` take their unwinder (the `_Unwind_*`
//! functions that panics unwind with) from `libgcc_s.so.1`. apccontrol is
//! started for every event and its start is on the path to the shutdown
//! (issue 17): loading and relocating one more shared library costs about
//! 0.1 ms a start on the bench machine (measured: an empty C program takes
//! 0.76 ms, 0.87 ms with libgcc_s linked in). GCC ships the same unwinder as
//! a static archive, `libgcc_eh.a`, which is what `gcc -static-libgcc`
//! links; named here, it is searched before std's `-lgcc_s`, resolves the
//! `_Unwind_*` symbols, and the linker (`--as-needed`) then drops libgcc_s.
//! Panics still unwind (laptop-upsd's NIS server contains a panicking
//! request with `catch_unwind`; the unit tests poison a lock by unwinding).
//!
//! It also packs the programs' relative relocations (`-z
//! pack-relative-relocs`, DT_RELR): apccontrol has about 3,400 of them, each
//! a 24-byte record the dynamic loader reads at every start; packed, they
//! take about 1 KiB (measured: 0.05 ms less per event). That needs glibc
//! 2.36 at run time (Debian 12); the linker adds that requirement
//! (GLIBC_ABI_DT_RELR) to the programs. The option is tried first on a small
//! C program with the C compiler (rustc may link with its own LLD, which
//! takes the option too): where that fails, the programs are linked as
//! before.
//!
//! If the C compiler that links us does not know the archive or the option,
//! nothing is changed for that part, and cargo says why.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
        || std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu")
    {
        return;
    }
    match static_unwinder_dir() {
        Some(dir) => {
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
        }
        None => println!(
            "cargo:warning=libgcc_eh.a not found (`cc -print-file-name=libgcc_eh.a`): \
             linking the unwinder from libgcc_s.so.1 as usual"
        ),
    }
    if links_with(PACK_RELATIVE_RELOCS) {
        println!("cargo:rustc-link-arg={PACK_RELATIVE_RELOCS}");
    } else {
        println!(
            "cargo:warning=the C compiler's linker cannot pack relative relocations \
             ({PACK_RELATIVE_RELOCS}; binutils >= 2.38 and glibc >= 2.36 can): linking without"
        );
    }
}

/// The linker option for DT_RELR.
const PACK_RELATIVE_RELOCS: &str = "-Wl,-z,pack-relative-relocs";

/// The C compiler that links us (`$CC`, else `cc`).
fn c_compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_string())
}

/// Whether a C program links with `option` (the linker rejects what it, or
/// the glibc it links against, cannot do).
fn links_with(option: &str) -> bool {
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    let source = out_dir.join("probe.c");
    if std::fs::write(&source, "int main(void) { return 0; }\n").is_err() {
        return false;
    }
    Command::new(c_compiler())
        .arg(&source)
        .arg("-o")
        .arg(out_dir.join("probe"))
        .arg(option)
        .output()
        .is_ok_and(|out| out.status.success())
}

/// The directory of GCC's `libgcc_eh.a`, as the C compiler that links us
/// reports it. `-print-file-name` echoes the bare name when it has no such
/// file.
fn static_unwinder_dir() -> Option<PathBuf> {
    let out = Command::new(c_compiler())
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let printed = String::from_utf8(out.stdout).ok()?;
    let file = Path::new(printed.trim());
    if !file.is_absolute() || !file.is_file() {
        return None;
    }
    file.parent().map(Path::to_path_buf)
}
