//! Every adapter under `schemas/departments/` passes its golden fixtures, and
//! each has cases that are accepted and cases that are rejected.

use std::path::Path;

use hutong_adapter::{Adapters, golden};
use hutong_standard::Standard;

#[test]
fn every_adapter_passes_its_golden_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let standard = Standard::load(&root).unwrap();
    let adapters = Adapters::load(&root.join("departments"), &standard).unwrap();
    let mut failures = Vec::new();
    let (mut total, mut count) = (0, 0);
    assert!(adapters.iter().count() >= 12, "the shipped adapters: {}", adapters.iter().count());
    for a in adapters.iter() {
        count += 1;
        let results = golden::run_fixtures(a, &standard).unwrap_or_else(|e| panic!("{}/{}: {e}", a.department, a.kind));
        let text = |r: &golden::CaseResult| std::fs::read_to_string(&r.path).unwrap_or_default();
        assert!(
            results.iter().any(|r| text(r).contains("\"expect\"")),
            "{}/{}: no accepted case",
            a.department,
            a.kind
        );
        assert!(
            results.iter().any(|r| text(r).contains("\"reject\"")),
            "{}/{}: no rejected case",
            a.department,
            a.kind
        );
        total += results.len();
        failures.extend(results.into_iter().filter_map(|r| r.failure.map(|f| format!("{}:\n{f}", r.path.display()))));
    }
    assert!(failures.is_empty(), "{} of {total} fixtures fail:\n{}", failures.len(), failures.join("\n\n"));
    assert!(total >= 5 * count, "{total} fixtures for {count} adapters");
}
