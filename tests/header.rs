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
        "\n#define EQ1_VERSION_MAJOR {major}\n#define EQ1_VERSION_MINOR {minor}\n#define EQ1_VERSION_PATCH {patch}\n#define EQ1_VERSION_NUMBER {number}\n#define EQ1_VERSION_STRING \"{major}.{minor}.{patch}\"\n{}",
        config.after_includes.as_deref().unwrap_or_default()
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

/// The sections of the header's functions, in order.
const SECTIONS: [&str; 9] = [
    "Library",
    "Options",
    "Client",
    "MQTT 5.0",
    "Callbacks",
    "TCP",
    "Serial",
    "Modbus",
    "Protocols",
];

/// Whether the function `name` belongs in `section`, by its name.
fn belongs(section: &str, name: &str) -> bool {
    match section {
        "Library" => !name.starts_with("eq1_mqtt_") && !is_other_protocol(name),
        "Options" => name.starts_with("eq1_mqtt_options_"),
        "Client" => name.starts_with("eq1_mqtt_client_") && !name.ends_with("_callback"),
        "MQTT 5.0" => name.starts_with("eq1_mqtt_"),
        "Callbacks" => name.ends_with("_callback"),
        "TCP" => name.starts_with("eq1_tcp_"),
        "Serial" => name.starts_with("eq1_serial_"),
        "Modbus" => name.starts_with("eq1_modbus_"),
        "Protocols" => name.starts_with("eq1_protocol_"),
        other => panic!("unknown section `{other}`"),
    }
}

/// The functions of the protocols beside MQTT, each in its own section.
fn is_other_protocol(name: &str) -> bool {
    ["eq1_tcp_", "eq1_serial_", "eq1_modbus_", "eq1_protocol_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// One function declaration of the header with the comment block above it.
struct Declared<'a> {
    name: &'a str,
    doc: &'a str,
    returns_status: bool,
    /// The section whose banner last preceded it.
    section: Option<&'a str>,
}

/// The function declarations (after `extern "C" {`), each with its doc block and section.
fn declared_functions(header: &str) -> Vec<Declared<'_>> {
    let start = header
        .find("extern \"C\" {")
        .expect("the header opens extern \"C\"");
    let body = &header[start..];
    let mut functions = Vec::new();
    let mut section = None;
    let mut offset = 0;
    while let Some(open) = body[offset..].find("/**") {
        let doc_start = offset + open;
        let doc_end = doc_start + body[doc_start..].find("*/").expect("comment closes") + 2;
        let doc = &body[doc_start..doc_end];
        let lines: Vec<&str> = doc.lines().collect();
        for pair in lines.windows(2) {
            if pair[0].starts_with(" * ====") {
                if let Some(name) = pair[1].strip_prefix(" * Section: ") {
                    section = Some(name);
                }
            }
        }
        let declaration_end = doc_end + body[doc_end..].find(';').expect("declaration ends");
        let declaration = body[doc_end..declaration_end].trim();
        let name_end = declaration.find('(').expect("a function declaration");
        let name = declaration[..name_end]
            .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap_or_default();
        functions.push(Declared {
            name,
            doc,
            returns_status: declaration.starts_with("enum eq1_status "),
            section,
        });
        offset = declaration_end;
    }
    functions
}

#[test]
fn every_function_says_what_it_returns_in_its_section() {
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/eq1.h"))
            .expect("read include/eq1.h");
    // The enumerators the header defines: `  EQ1_STATUS_TIMEOUT = 20,`.
    let defined: Vec<&str> = header
        .lines()
        .filter_map(|line| line.trim().split_once(" = "))
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("EQ1_STATUS_"))
        .collect();
    for (at, _) in header.match_indices("EQ1_STATUS_") {
        let name: String = header[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        assert!(
            defined.contains(&name.as_str()),
            "the header names `{name}`, which is not a status"
        );
    }

    let functions = declared_functions(&header);
    // Every declaration (a line that starts with a letter) has its comment block.
    let extern_c = header.find("extern \"C\" {").unwrap_or_default();
    let declarations = header[extern_c..]
        .lines()
        .filter(|line| line.starts_with(|c: char| c.is_ascii_alphabetic()))
        .count()
        - 1; // the `extern "C" {` line itself
    assert_eq!(
        functions.len(),
        declarations,
        "a function without a comment block"
    );
    let names: Vec<&str> = functions.iter().map(|f| f.name).collect();
    for f in &functions {
        let name = f.name;
        assert!(name.starts_with("eq1_"), "unexpected declaration `{name}`");
        assert!(
            f.doc.contains(" * Returns:"),
            "{name}: no `Returns:` in its comment"
        );
        if f.returns_status {
            // A list of its own (success included), or the list of a function named there.
            let like = f
                .doc
                .split(" * Returns: as `")
                .nth(1)
                .and_then(|rest| rest.split('`').next());
            assert!(
                f.doc.contains("`EQ1_STATUS_OK`")
                    || like.is_some_and(|other| names.contains(&other)),
                "{name}: its `Returns:` lists no status (nor refers to a function that does)"
            );
        }
        if f.returns_status
            && f.doc.contains("`EQ1_STATUS_OK`")
            && name.starts_with("eq1_mqtt_client_")
            && name != "eq1_mqtt_client_new"
            && name != "eq1_mqtt_client_free"
        {
            assert!(
                f.doc.contains("`EQ1_STATUS_INVALID_STATE`") && f.doc.contains("fork()"),
                "{name}: a client inherited through fork() is refused with EQ1_STATUS_INVALID_STATE"
            );
        }
        let section = f
            .section
            .unwrap_or_else(|| panic!("{name} comes before any section"));
        assert!(
            belongs(section, name),
            "{name} does not belong in section `{section}`"
        );
    }

    let mut order: Vec<&str> = functions.iter().filter_map(|f| f.section).collect();
    order.dedup();
    assert_eq!(
        order, SECTIONS,
        "the sections come in this order, each once"
    );
    let types = header.find("\n * Types\n").expect("the Types banner");
    let first_type = header.find("\ntypedef ").expect("a type");
    assert!(types < first_type, "the Types banner opens the types");
}
