//! `include/eq1.h` is generated from the code by cbindgen and committed: this test fails when
//! the committed header is stale. `EQ1_BLESS=1 cargo test --test header` rewrites it.

use eq1::core::status::{Family, Status};
use std::fmt::Write as _;
use std::path::Path;

/// The status table's two enums as the Rust source cbindgen reads: they are built by a macro,
/// which cbindgen cannot expand, so the header is rendered from their values instead.
fn status_enums_source() -> String {
    fn render<T: Copy + std::fmt::Debug>(
        c_name: &str,
        doc: &str,
        values: &[T],
        number: impl Fn(T) -> i32,
        value_doc: impl Fn(T) -> &'static str,
    ) -> String {
        let comment = |text: &str, indent: &str| -> String {
            text.lines()
                .map(|line| format!("{indent}///{line}\n"))
                .collect()
        };
        let mut out = comment(doc, "");
        writeln!(out, "#[repr(C)]\npub enum {c_name} {{").unwrap();
        for &value in values {
            out += &comment(value_doc(value), "    ");
            writeln!(out, "    {value:?} = {},", number(value)).unwrap();
        }
        out + "}\n"
    }
    render(
        "eq1_status_family",
        Family::DOC,
        Family::ALL,
        Family::number,
        Family::doc,
    ) + &render(
        "eq1_status",
        Status::DOC,
        Status::ALL,
        Status::number,
        Status::doc,
    )
}

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
    let status_enums = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eq1_status_enums.rs");
    std::fs::write(&status_enums, status_enums_source()).expect("write the status enums");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_src(&status_enums)
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
    for status in Status::ALL {
        let name = status.info().name.to_str().unwrap();
        let line = format!("{name} = {},", status.number());
        assert!(generated.contains(&line), "the header lacks `{line}`");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/eq1.h is stale: run `EQ1_BLESS=1 cargo test --test header` and commit it"
    );
}
