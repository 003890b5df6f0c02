//! `include/eq1.h` is generated from the code by cbindgen and committed: this test fails when
//! the committed header is stale. `EQ1_BLESS=1 cargo test --test header` rewrites it.

use std::path::Path;

fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let (major, minor, patch) = (
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    );
    let number: u32 = major.parse::<u32>().unwrap() * 10_000
        + minor.parse::<u32>().unwrap() * 100
        + patch.parse::<u32>().unwrap();
    config.after_includes = Some(format!(
        "\n#define EQ1_VERSION_MAJOR {major}\n#define EQ1_VERSION_MINOR {minor}\n#define EQ1_VERSION_PATCH {patch}\n#define EQ1_VERSION_NUMBER {number}\n#define EQ1_VERSION_STRING \"{major}.{minor}.{patch}\"\n"
    ));
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}

#[test]
fn committed_header_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/eq1.h");
    let generated = generate();
    if std::env::var_os("EQ1_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/eq1.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/eq1.h is stale: run `EQ1_BLESS=1 cargo test --test header` and commit it"
    );
}
