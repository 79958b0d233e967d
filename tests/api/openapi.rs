//! The committed spec is what the binary serves and prints.

#[test]
fn committed_spec_is_current() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap_or_default();
    let current = tokend::routes::openapi::spec_json();
    assert!(
        committed == current,
        "openapi/openapi.json is out of date; regenerate it with\n    cargo run -- openapi > openapi/openapi.json"
    );
}
