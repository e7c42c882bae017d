//! Property tests (proptest) of the loaders a hostile input reaches first: scenario files,
//! values YAML and `--set` expressions. Whatever the bytes, each returns a value or an input
//! error; none panics. Bounded (a fixed number of cases per property) so CI time is fixed.

use keda_conformance::chart::{source, values};
use keda_conformance::scenario::Scenario;
use proptest::prelude::*;
use std::path::Path;

/// Pieces real scenario and values files are made of, so generated documents get past the
/// YAML parser often and reach the checks behind it.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("name: x\n".to_string()),
        Just("chart: ../../fixtures/charts/compactor-1x\n".to_string()),
        Just("steps:\n".to_string()),
        Just("  - render: {}\n".to_string()),
        Just("  - install: {metrics: mock, mock: {status: {code: 99999, body: x}}}\n".to_string()),
        Just("  - expect_replicas: {exact: 1, within: 1000000h}\n".to_string()),
        Just("  - seed: {tenant: t, series: [{name: m, value: 1e308}]}\n".to_string()),
        Just("live: {nodes: 0, empty_answer: fail}\n".to_string()),
        Just("release: --post-renderer=x\n".to_string()),
        Just("a: &a [*a, *a]\n".to_string()),
        Just("k: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n".to_string()),
        Just("x: \"\\u0000\"\n".to_string()),
        Just("helm: [3, 4, 5]\n".to_string()),
        "[ -~\\n\\t]{0,40}",
    ]
}

fn document() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn scenario_loader_never_panics(text in document()) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(&file, &text).unwrap();
        let _ = Scenario::load(&file);
    }

    #[test]
    fn values_parser_never_panics(text in document()) {
        let _ = source::parse_yaml(Path::new("values.yaml"), &text);
    }

    #[test]
    fn set_parser_never_panics(expr in "[a-z.\\[\\]0-9=,\\\\{}\"-]{0,80}") {
        let _ = values::parse_set(&expr);
    }
}
