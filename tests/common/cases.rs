//! How many cases each property runs: shared by the property-test files.

use proptest::test_runner::Config as ProptestConfig;

/// No property runs fewer cases than this, whatever PROPTEST_CASES says: `PROPTEST_CASES=0`
/// would otherwise pass every property having tried nothing. A lower value is raised to it.
const MIN_CASES: u32 = 256;

/// `default` cases, or PROPTEST_CASES (`make fuzz`), never fewer than `MIN_CASES`.
pub fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
        .max(MIN_CASES);
    // `proptest!` re-reads PROPTEST_CASES over the configuration it is given
    // (`contextualize_config`): a value below the floor is raised in the environment itself.
    if std::env::var("PROPTEST_CASES").is_ok() {
        std::env::set_var("PROPTEST_CASES", cases.to_string());
    }
    ProptestConfig {
        cases,
        // Failures are reported with the minimal input; add them as unit tests, not files.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
