//! Shared by the in-process gateway tests.

use hutong_gateway::{Policy, Security};

/// Token mode for in-process tests: 公安 may submit household registrations with the bearer token
/// `gongan-token` (the policy holds its SHA-256).
pub(crate) fn token_security() -> Security {
    Security::plaintext_tokens(
        Policy::parse(
            r#"
version = 1
[departments.gongan]
kinds = ["household_registration"]
token-sha256 = "e021203578682c86aa6a93422e31c352cb2e7cfd50758a0203dbe1ceeff257d0"
"#,
        )
        .expect("the test policy parses"),
    )
}
