//! Gives the shared library its SONAME, so that programs link against the ABI version
//! (`libeq1.so.0`) rather than the unversioned development name.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libeq1.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
