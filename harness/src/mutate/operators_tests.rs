//! Unit tests of the operator table: each rule on the lines it is meant for, and the lines it
//! must leave alone.

use super::*;

fn facts(kind: &str, metric: &str) -> Facts {
    Facts {
        target_kind: Some(kind.into()),
        metric_type: Some(metric.into()),
    }
}

/// The edits operator `name` makes to line `at` (0-based) of `text` in a region with `roles`.
fn edits(name: &str, text: &str, at: usize, roles: &[Role]) -> Vec<Edit> {
    let lines: Vec<&str> = text.lines().collect();
    let roles: BTreeSet<Role> = roles.iter().copied().collect();
    let f = facts("Deployment", "AverageValue");
    let ctx = LineCtx {
        lines: &lines,
        index: at,
        roles: &roles,
        facts: &f,
    };
    (by_name(name).expect("operator").rule)(&ctx)
}

fn replaced(text: &str) -> Edit {
    Edit::Replace(text.to_string())
}

const SO: &[Role] = &[Role::ScaledObject];
const WORKLOAD: &[Role] = &[Role::Workload];

#[test]
fn every_operator_is_named_once_and_documented() {
    let names: BTreeSet<&str> = OPERATORS.iter().map(|o| o.name).collect();
    assert_eq!(names.len(), OPERATORS.len());
    for required in [
        "drop-custom-headers",
        "quote-to-raw",
        "value-printed-as-map",
        "drop-with-guard",
        "rename-values-key",
        "replicas-while-autoscaling",
        "scale-target-name",
        "scale-target-kind",
        "flip-metric-type",
        "drop-auth",
    ] {
        assert!(names.contains(required), "{required}");
    }
    assert!(OPERATORS
        .iter()
        .all(|o| !o.models.is_empty() && !o.roles.is_empty()));
}

#[test]
fn drop_custom_headers_deletes_the_line_or_drops_its_block() {
    let t = "        {{- with .metadata.customHeaders }}\n        customHeaders: {{ . }}\n        {{- end }}";
    assert_eq!(
        edits("drop-custom-headers", t, 0, SO),
        vec![replaced("        {{- with false }}")]
    );
    assert_eq!(edits("drop-custom-headers", t, 1, SO), vec![Edit::Delete]);
    assert!(edits("drop-custom-headers", t, 2, SO).is_empty());
}

#[test]
fn drop_custom_headers_filters_a_metadata_range() {
    let t = "      {{- range $key, $value := .metadata }}\n        {{ $key }}: {{ $value | quote }}\n      {{- end }}";
    assert_eq!(
        edits("drop-custom-headers", t, 1, SO),
        vec![replaced(
            "        {{ if ne (toString $key) \"customHeaders\" }}{{ $key }}: {{ $value | quote }}{{ end }}"
        )]
    );
    let labels = "  {{- range $key, $value := .labels }}\n    {{ $key }}: {{ $value }}";
    assert!(edits("drop-custom-headers", labels, 1, SO).is_empty());
}

#[test]
fn quote_to_raw_unquotes_each_value() {
    assert_eq!(
        edits(
            "quote-to-raw",
            "  threshold: {{ .t | quote }} # x | quote",
            0,
            SO
        ),
        vec![replaced("  threshold: {{ .t }} # x | quote")]
    );
    assert_eq!(
        edits("quote-to-raw", "  a: {{ quote .a }}", 0, SO),
        vec![replaced("  a: {{ .a }}")]
    );
}

#[test]
fn value_printed_as_map_uses_go_formatting() {
    assert_eq!(
        edits(
            "value-printed-as-map",
            "    {{- toYaml . | nindent 4 }}",
            0,
            SO
        ),
        vec![replaced("    {{- printf \"%v\" . | nindent 4 }}")]
    );
}

#[test]
fn drop_with_guard_makes_the_block_unconditional() {
    assert_eq!(
        edits("drop-with-guard", "  {{- with .fallback }}", 0, SO),
        vec![replaced("  {{- range list (.fallback) }}")]
    );
    assert_eq!(
        edits(
            "drop-with-guard",
            "{{- if and .enabled .keda.enabled }}",
            0,
            SO
        ),
        vec![replaced("{{- if true }}")]
    );
    assert!(edits("drop-with-guard", "{{- with $x := .a }}", 0, SO).is_empty());
    assert!(edits("drop-with-guard", "{{- else if .a }}", 0, SO).is_empty());
}

#[test]
fn rename_values_key_renames_the_last_key_read() {
    assert_eq!(
        edits(
            "rename-values-key",
            "{{- with .Values.compactor.autoscaling }} {{ $.Release.Name }}",
            0,
            SO
        ),
        vec![replaced(
            "{{- with .Values.compactor.autoscalingRenamed }} {{ $.Release.Name }}"
        )]
    );
    assert_eq!(
        edits(
            "rename-values-key",
            "  min: {{ .minReplicas }} {{ $as.keda.x }}",
            0,
            SO
        ),
        vec![
            replaced("  min: {{ .minReplicasRenamed }} {{ $as.keda.x }}"),
            replaced("  min: {{ .minReplicas }} {{ $as.keda.xRenamed }}"),
        ]
    );
    assert!(edits("rename-values-key", "  ns: {{ .Release.Namespace }}", 0, SO).is_empty());
}

#[test]
fn replicas_while_autoscaling_removes_the_guard() {
    let t = "spec:\n  {{- if not .Values.c.autoscaling.enabled }}\n  replicas: {{ .Values.c.replicas }}\n  {{- end }}";
    assert_eq!(
        edits("replicas-while-autoscaling", t, 1, WORKLOAD),
        vec![replaced("  {{- if true }}")]
    );
    let other = "spec:\n  {{- if .Values.c.debug }}\n  replicas: 1";
    assert!(edits("replicas-while-autoscaling", other, 1, WORKLOAD).is_empty());
}

#[test]
fn scale_target_name_and_kind_under_scale_target_ref() {
    let t = "spec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: {{ .kind }}\n    name: {{ $name }}\n  name: other";
    assert_eq!(
        edits("scale-target-name", t, 4, SO),
        vec![replaced("    name: {{ $name }}-x")]
    );
    assert!(edits("scale-target-name", t, 5, SO).is_empty());
    // Templated: the literal opposite of what the original render targets (Deployment).
    assert_eq!(
        edits("scale-target-kind", t, 3, SO),
        vec![replaced("    kind: StatefulSet")]
    );
    let literal = "  scaleTargetRef:\n    name: \"w\"\n    kind: StatefulSet";
    assert_eq!(
        edits("scale-target-name", literal, 1, SO),
        vec![replaced("    name: \"w-x\"")]
    );
    assert_eq!(
        edits("scale-target-kind", literal, 2, SO),
        vec![replaced("    kind: Deployment")]
    );
}

#[test]
fn scale_target_name_and_kind_of_the_workload() {
    let t = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ $name }}\n  labels:\n    name: x";
    assert_eq!(
        edits("scale-target-kind", t, 1, WORKLOAD),
        vec![replaced("kind: StatefulSet")]
    );
    assert_eq!(
        edits("scale-target-name", t, 3, WORKLOAD),
        vec![replaced("  name: {{ $name }}-x")]
    );
    assert!(edits("scale-target-name", t, 5, WORKLOAD).is_empty());
    // Not the workload's document.
    let cm = "kind: ConfigMap\nmetadata:\n  name: x";
    assert!(edits("scale-target-name", cm, 2, WORKLOAD).is_empty());
}

#[test]
fn flip_metric_type_both_ways() {
    assert_eq!(
        edits("flip-metric-type", "      metricType: AverageValue", 0, SO),
        vec![replaced("      metricType: Value")]
    );
    assert_eq!(
        edits("flip-metric-type", "      metricType: \"Value\"", 0, SO),
        vec![replaced("      metricType: \"AverageValue\"")]
    );
    assert_eq!(
        edits(
            "flip-metric-type",
            "      metricType: {{ . | quote }}",
            0,
            SO
        ),
        vec![replaced("      metricType: \"Value\"")]
    );
    assert!(edits("flip-metric-type", "      type: Utilization", 0, SO).is_empty());
}

#[test]
fn drop_auth_deletes_or_drops_the_block() {
    assert_eq!(
        edits("drop-auth", "      {{- with .authenticationRef }}", 0, SO),
        vec![replaced("      {{- with false }}")]
    );
    assert_eq!(
        edits("drop-auth", "    authModes: bearer", 0, SO),
        vec![Edit::Delete]
    );
}

#[test]
fn generate_numbers_deduplicates_and_skips_comments() {
    let text = "{{- /* customHeaders as given */}}\n{{/*\ncustomHeaders: {{ . }}\n*/}}\nspec:\n  triggers:\n    - metadata:\n        customHeaders: {{ .h | quote }}\n";
    let files = vec![TemplateFile {
        path: "templates/so.yaml".into(),
        text: text.into(),
    }];
    let scope = Scope {
        regions: vec![Region {
            file: "templates/so.yaml".into(),
            first_line: 1,
            last_line: 8,
            roles: SO.iter().copied().collect(),
            define: None,
        }],
        facts: facts("Deployment", "AverageValue"),
    };
    let mutants = generate(&files, &scope, &[]);
    let shown: Vec<(usize, &str, usize)> =
        mutants.iter().map(|m| (m.id, m.operator, m.line)).collect();
    assert_eq!(
        shown,
        vec![
            (1, "drop-custom-headers", 8),
            (2, "quote-to-raw", 8),
            (3, "rename-values-key", 8),
        ]
    );
    assert_eq!(
        mutants[0].apply(text),
        "{{- /* customHeaders as given */}}\n{{/*\ncustomHeaders: {{ . }}\n*/}}\nspec:\n  triggers:\n    - metadata:\n"
    );
    assert!(mutants[1]
        .apply(text)
        .ends_with("customHeaders: {{ .h }}\n"));
    let only = generate(&files, &scope, &["quote-to-raw".to_string()]);
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].id, 1);
}

#[test]
fn apply_keeps_line_endings() {
    let m = Mutant {
        id: 1,
        operator: "quote-to-raw",
        file: "f".into(),
        line: 2,
        before: "b".into(),
        after: Some("B".into()),
    };
    assert_eq!(m.apply("a\r\nb\r\nc"), "a\r\nB\r\nc");
    assert_eq!(m.apply("a\nb"), "a\nB");
}
