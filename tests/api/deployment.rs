//! What the deployed stack (template.yaml) must and must not say.

use seatbook_core::config::DEV_IDENTITY_VAR;

const TEMPLATE: &str = include_str!("../../template.yaml");

#[test]
fn the_deployed_stack_never_enables_dev_identity() {
    // Dev identity trusts caller-supplied headers; deployed, only the JWT authorizer's claims count.
    assert!(
        !TEMPLATE.contains(DEV_IDENTITY_VAR),
        "template.yaml must not mention {DEV_IDENTITY_VAR}"
    );
    assert!(!TEMPLATE.to_lowercase().contains("x-dev-user"));
}

#[test]
fn every_function_in_the_stack_is_a_binary_of_the_workspace() {
    let binaries: Vec<&str> = TEMPLATE
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Binary:"))
        .map(str::trim)
        .collect();
    assert_eq!(
        binaries.len(),
        6,
        "booking, events, metrics, organizer, migrate, notifier: {binaries:?}"
    );
    // This crate is tests/; the workspace root is its parent.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for binary in binaries {
        let main = format!("{root}/functions/{binary}/src/main.rs");
        assert!(
            std::path::Path::new(&main).exists(),
            "template.yaml builds `{binary}`, which has no {main}"
        );
    }
}
