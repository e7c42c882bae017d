//! `mutate` end to end, offline with real Helm: each operator's mutant on the fixture chart
//! `fixtures/mutate/chart` and the render tier's verdict on it, equivalence, suite scenarios as
//! judges, the report formats, exit codes, and that the user's chart is left untouched.

use keda_conformance::chart::helm::HelmMajor;
use keda_conformance::checks::ExpectedHeader;
use keda_conformance::mutate::{self, MutantResult, MutateOptions, MutationReport, Status};
use keda_conformance::render::RenderOptions;
use std::path::{Path, PathBuf};

mod common;
use common::{harness, root, text};

const CHART: &str = "fixtures/mutate/chart";
const VALUES: &str = "fixtures/mutate/values/tenant-a.yaml";

fn options(operators: &[&str], suites: &[&str]) -> MutateOptions {
    MutateOptions {
        render: RenderOptions {
            chart: root().join(CHART),
            version: None,
            values_files: vec![root().join(VALUES)],
            sets: vec![],
            release: "tempo".into(),
            namespace: "tempo".into(),
            expected_headers: vec![ExpectedHeader::parse("X-Scope-OrgID=tenant-a").unwrap()],
            expect_scaled_object: false,
            helm: HelmMajor::V3,
            capabilities: Default::default(),
        },
        suites: suites.iter().map(|s| root().join(s)).collect(),
        operators: operators.iter().map(|o| o.to_string()).collect(),
        jobs: 2,
    }
}

fn run(operators: &[&str], suites: &[&str]) -> MutationReport {
    mutate::run(&options(operators, suites)).expect("mutate runs")
}

/// The mutant `operator` made at `file:line` whose new line is `after` (`None`: deleted).
fn find<'a>(
    r: &'a MutationReport,
    operator: &str,
    file: &str,
    line: usize,
    after: Option<&str>,
) -> Option<&'a MutantResult> {
    r.mutants.iter().find(|m| {
        m.mutant.operator == operator
            && m.mutant.file == file
            && m.mutant.line == line
            && m.mutant.after.as_deref().map(str::trim) == after
    })
}

#[test]
fn each_operator_makes_its_mutant_and_the_render_tier_kills_it() {
    let r = run(&[], &[]);
    // operator | file:line | the new line, trimmed (empty: the line is deleted) | the check that
    // kills it (the killing finding starts with it)
    let table = [
        "drop-custom-headers | _helpers.tpl:27 |  | trigger.expected-header",
        "drop-custom-headers | _helpers.tpl:26 | {{- with false }} | trigger.expected-header",
        "quote-to-raw | _helpers.tpl:18 | threshold: {{ .trigger.metadata.threshold }} | keda.schema",
        "value-printed-as-map | _helpers.tpl:14 | {{- printf \"%v\" . | nindent 4 }} | keda.schema",
        "drop-with-guard | scaledobject.yaml:14 | {{- range list (.keda.fallback) }} | chart.renders",
        "rename-values-key | scaledobject.yaml:13 | maxReplicaCount: {{ .maxReplicasRenamed }} | values.fidelity",
        "scale-target-name | scaledobject.yaml:11 | name: {{ include \"fixture.worker\" $ }}-x | scaledobject.target",
        "scale-target-kind | scaledobject.yaml:10 | kind: StatefulSet | scaledobject.target",
        "scale-target-kind | worker.yaml:2 | kind: StatefulSet | scaledobject.target",
        "flip-metric-type | _helpers.tpl:10 | metricType: \"Value\" | values.fidelity",
        "drop-auth | _helpers.tpl:24 |  | values.fidelity",
        "replicas-while-autoscaling | worker.yaml:8 | {{- if true }} | workload.replicas-while-scaled",
        "rename-values-key | triggerauthentication.yaml:10 | name: {{ .secretNameRenamed }} | keda.schema",
    ];
    let mut problems = Vec::new();
    for row in table {
        let cells: Vec<&str> = row.split(" | ").map(str::trim).collect();
        let (op, at, check) = (cells[0], cells[1], cells[cells.len() - 1]);
        // The new line may itself hold " | " (a pipeline): it is everything between.
        let after = cells[2..cells.len() - 1].join(" | ");
        let after = (!after.is_empty()).then_some(after.as_str());
        let (file, line) = at.split_once(':').unwrap();
        let (file, line) = (format!("templates/{file}"), line.parse::<usize>().unwrap());
        match find(&r, op, &file, line, after) {
            None => problems.push(format!("{op}: no mutant at {file}:{line} -> {after:?}")),
            Some(m) if m.status != Status::Killed => problems.push(format!(
                "{op} {file}:{line}: {:?} ({:?})",
                m.status, m.reason
            )),
            Some(m) => {
                let why = m.reason.clone().unwrap_or_default();
                if !why.starts_with(check) {
                    problems.push(format!(
                        "{op} {file}:{line}: killed by {why}, expected {check}"
                    ));
                }
                if m.killed_by.as_deref() != Some("command line") {
                    problems.push(format!("{op}: killed by {:?}", m.killed_by));
                }
            }
        }
    }
    // The kind KEDA defaults to anyway: acceptable, it survives (see the README).
    match find(
        &r,
        "rename-values-key",
        "templates/scaledobject.yaml",
        10,
        Some("kind: {{ $.Values.worker.kindRenamed }}"),
    ) {
        Some(m) if m.status == Status::Survived => {}
        other => problems.push(format!("rename-values-key on the kind: {other:?}")),
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let c = r.counts();
    assert_eq!(c.errored, 0);
    assert_eq!(c.generated, c.killed + c.survived + c.equivalent);
    let score = r.score().expect("a score");
    assert!((score - 100.0 * c.killed as f64 / (c.killed + c.survived) as f64).abs() < 1e-9);
    // Ids follow report order, one edit per mutant.
    assert!(r
        .mutants
        .iter()
        .enumerate()
        .all(|(i, m)| m.mutant.id == i + 1));
}

#[test]
fn mutants_that_render_like_the_original_are_equivalent_and_comments_are_not_mutated() {
    let r = run(
        &["rename-values-key", "quote-to-raw", "drop-custom-headers"],
        &[],
    );
    let so = "templates/scaledobject.yaml";
    // fallback is unset in the values: renaming the key it reads renders the same bytes.
    let unused = find(
        &r,
        "rename-values-key",
        so,
        14,
        Some("{{- with .keda.fallbackRenamed }}"),
    )
    .expect("mutant in the unused fallback block");
    assert_eq!(unused.status, Status::Equivalent, "{unused:?}");
    assert!(unused
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("byte for byte"));
    // An unquoted query that stays a string: the same object once parsed.
    let quoting = find(
        &r,
        "quote-to-raw",
        "templates/_helpers.tpl",
        19,
        Some("query: {{ .trigger.metadata.query }}"),
    )
    .expect("unquoted query");
    assert_eq!(quoting.status, Status::Equivalent, "{quoting:?}");
    assert!(quoting
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("same objects"));
    // Line 1 is a template comment that mentions customHeaders: no mutant there.
    assert!(r
        .mutants
        .iter()
        .all(|m| !(m.mutant.file == so && m.mutant.line == 1)));
    let c = r.counts();
    assert!(c.equivalent >= 2);
    let score = r.score().unwrap();
    assert!((score - 100.0 * c.killed as f64 / (c.killed + c.survived) as f64).abs() < 1e-9);
}

#[test]
fn suite_scenarios_for_the_chart_judge_every_mutant() {
    let so = "templates/scaledobject.yaml";
    let renamed = Some("kind: {{ $.Values.worker.kindRenamed }}");
    // The command line's values use a Deployment, KEDA's default kind: nothing notices.
    let alone = run(&["rename-values-key"], &[]);
    assert_eq!(alone.judges, vec!["command line"]);
    let m = find(&alone, "rename-values-key", so, 10, renamed).unwrap();
    assert_eq!(m.status, Status::Survived, "{m:?}");
    assert_eq!(
        m.changes,
        vec!["ScaledObject/tempo-worker: spec.scaleTargetRef.kind removed"]
    );
    // The suite's StatefulSet scenario does; the scenario of another chart is left out.
    let with_suite = run(&["rename-values-key"], &["fixtures/mutate/suite"]);
    assert_eq!(
        with_suite.judges,
        vec!["command line", "scenario worker-statefulset [helm 3]"]
    );
    let m = find(&with_suite, "rename-values-key", so, 10, renamed).unwrap();
    assert_eq!(m.status, Status::Killed, "{m:?}");
    assert_eq!(
        m.killed_by.as_deref(),
        Some("scenario worker-statefulset [helm 3]")
    );
}

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "mutate",
        "--chart",
        CHART,
        "-f",
        VALUES,
        "--expect-header",
        "X-Scope-OrgID=tenant-a",
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn text_json_and_junit_reports() {
    let ops = [
        "--operator",
        "rename-values-key",
        "--operator",
        "scale-target-name",
    ];
    let o = harness(&args(&[&ops[..], &["--helm", "4"]].concat()));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for want in [
        "mutate mutate-fixture 0.1.0 · helm 4 (v4.",
        "mutants: 23 generated: 18 killed, 1 survived, 4 equivalent (dropped), 0 errored",
        "mutation score: 94.7% (18 of 19 non-equivalent mutants killed)",
        "#12 rename-values-key templates/scaledobject.yaml:10\n    -     kind: {{ $.Values.worker.kind }}\n    +     kind: {{ $.Values.worker.kindRenamed }}\n",
        "why nothing caught it: the render changed for 1 of 1 judge(s), and every render check and expectation still passes",
        "changed: ScaledObject/tempo-worker: spec.scaleTargetRef.kind removed",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }

    let o = harness(&args(&[&ops[..], &["--format", "json"]].concat()));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["schema"], "keda-conformance/mutate/v1");
    assert_eq!(v["counts"]["killed"], 18);
    assert_eq!(v["counts"]["survived"], 1);
    assert_eq!(v["counts"]["equivalent"], 4);
    let mutants = v["mutants"].as_array().unwrap();
    assert_eq!(mutants.len(), 23);
    assert_eq!(mutants[11]["status"], "survived");
    assert_eq!(mutants[11]["operator"], "rename-values-key");
    assert_eq!(mutants[11]["line"], 10);
    assert_eq!(mutants[0]["status"], "killed");
    assert_eq!(mutants[0]["killed_by"], "command line");
    assert!((v["score"].as_f64().unwrap() - 1800.0 / 19.0).abs() < 1e-6);

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("mutants.xml");
    let file_arg = file.to_string_lossy().to_string();
    let o = harness(&args(
        &[&ops[..], &["--format", "junit", "--out", &file_arg]].concat(),
    ));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(o.stdout.is_empty(), "--out writes the file only");
    let xml = std::fs::read_to_string(&file).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).expect("JUnit parses");
    let suite = &report.test_suites[0];
    assert_eq!(
        suite.test_cases.len(),
        19,
        "one per non-equivalent mutant:\n{xml}"
    );
    let failures: Vec<&str> = suite
        .test_cases
        .iter()
        .filter(|c| {
            matches!(
                c.status,
                quick_junit::TestCaseStatus::NonSuccess {
                    kind: quick_junit::NonSuccessKind::Failure,
                    ..
                }
            )
        })
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        failures,
        vec!["#12 rename-values-key templates/scaledobject.yaml:10"]
    );
}

#[test]
fn min_score_sets_the_exit_code() {
    let only_survivor = ["--operator", "rename-values-key"];
    let o = harness(&args(&only_survivor));
    assert_eq!(
        o.status.code(),
        Some(0),
        "report only by default:\n{}",
        text(&o)
    );
    let o = harness(&args(
        &[&only_survivor[..], &["--min-score", "95"]].concat(),
    ));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("below --min-score 95%"), "{}", text(&o));
    let o = harness(&args(&[
        "--operator",
        "scale-target-kind",
        "--min-score",
        "100%",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// Every file under `dir` with its bytes, permissions and modification time.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32, std::time::SystemTime)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p.clone());
            }
            let bytes = if meta.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                vec![]
            };
            out.push((
                p,
                bytes,
                meta.permissions().mode(),
                meta.modified().unwrap(),
            ));
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn the_users_chart_is_untouched_and_no_copy_is_left_behind() {
    let work = tempfile::tempdir().unwrap();
    let chart = work.path().join("chart");
    copy_dir(&root().join(CHART), &chart);
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let before = fingerprint(&chart);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args(["mutate", "--chart"])
        .arg(&chart)
        .arg("-f")
        .arg(root().join(VALUES))
        .args(["--expect-header", "X-Scope-OrgID=tenant-a"])
        .env("TMPDIR", &tmp)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("mutation score:"));
    assert_eq!(fingerprint(&chart), before, "the chart directory changed");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

#[test]
fn chart_copies_are_private_and_removed() {
    use std::os::unix::fs::PermissionsExt;
    let ws = mutate::workspace::Workspace::new(&root().join(CHART), 2).unwrap();
    assert_eq!(ws.workers(), 2);
    let copy = ws.copy(1).to_path_buf();
    assert_ne!(copy, ws.copy(0));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&copy), 0o700);
    assert_eq!(mode(&copy.join("templates")), 0o700);
    assert_eq!(mode(&copy.join("templates/worker.yaml")), 0o600);
    let root_dir = copy.parent().unwrap().parent().unwrap().to_path_buf();
    assert_eq!(mode(&root_dir), 0o700);
    drop(ws);
    assert!(!root_dir.exists());
}

#[test]
fn bad_input_exits_2_naming_the_file_or_flag_and_the_fix() {
    let work = tempfile::tempdir().unwrap();
    let bad_yaml = work.path().join("bad.yaml");
    std::fs::write(&bad_yaml, "worker:\n  autoscaling: [unclosed\n").unwrap();
    let bad_yaml = bad_yaml.to_string_lossy().to_string();
    let nothing = work.path().join("nothing.yaml");
    std::fs::write(&nothing, "worker: {}\n").unwrap();
    let nothing = nothing.to_string_lossy().to_string();
    // Arguments after `mutate` (C: the chart, V: its values), and what the message must name.
    let cases = [
        (
            "--chart fixtures/mutate/no-such-chart -f V",
            "fixtures/mutate/no-such-chart: chart directory does not exist",
        ),
        ("--chart fixtures/mutate/chart/Chart.yaml -f V", "is a file"),
        (
            "--chart fixtures/mutate -f V",
            "directory has no Chart.yaml",
        ),
        (
            "--chart C -f fixtures/mutate/values/missing.yaml",
            "values file does not exist",
        ),
        (
            &format!("--chart C -f {bad_yaml}"),
            "bad.yaml:3:1: invalid YAML",
        ),
        (&format!("--chart C -f {nothing}"), "nothing to mutate"),
        (
            "--chart fixtures/charts/backend-worker-3x -f V",
            "does not render with these values: Error: execution error",
        ),
        (
            "--chart C -f V --operator drop-everything",
            "--operator drop-everything",
        ),
        ("--chart C -f V --suite fixtures/mutate/no-suite", "--suite"),
        (
            "--chart C -f V --expect-header no-equals",
            "--expect-header",
        ),
        ("--chart C -f V --min-score 150", "percentage from 0 to 100"),
        ("--chart C -f V --out /no/such/dir/r.txt", "--out"),
    ];
    for (line, want) in cases {
        let mut a = vec!["mutate"];
        a.extend(line.split_whitespace().map(|w| match w {
            "C" => CHART,
            "V" => VALUES,
            other => other,
        }));
        let o = harness(&a);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{a:?}:\n{t}");
        assert!(t.contains(want), "{a:?}: missing {want:?} in:\n{t}");
        if !want.contains("percentage") {
            assert!(t.contains("fix:"), "{a:?}: no fix in:\n{t}");
        }
    }
}

#[test]
fn bench_mutate_prints_the_rate() {
    let o = harness(&[
        "bench",
        "mutate",
        "--chart",
        CHART,
        "-f",
        VALUES,
        "--expect-header",
        "X-Scope-OrgID=tenant-a",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for want in [
        "mutants generated ",
        "equivalent ",
        "mutants/s",
        "total wall ",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
}

#[test]
fn an_interrupt_removes_the_chart_copies_and_exits_130() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    // A long run: the backend-worker fixture judged by the default suite too.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keda-conformance"))
        .args(["mutate", "--chart", "fixtures/charts/backend-worker-3x"])
        .args(["-f", "fixtures/values/backend-worker-tenant-a.yaml"])
        .args(["--suite", "suites/default"])
        .current_dir(root())
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let copies = || -> Vec<PathBuf> {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("keda-conformance-mutate-"))
            })
            .collect()
    };
    // Interrupt once mutants are being judged (written into the copies, rendered).
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("mutate: judging") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no progress line");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(copies().len(), 1, "one private directory of copies");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(copies().is_empty(), "left behind: {:?}", copies());
}

#[test]
fn tier_all_without_a_live_scenario_for_the_chart_is_bad_input() {
    let o = harness(&[
        "mutate",
        "--chart",
        "fixtures/mutate/live-chart",
        "-f",
        "fixtures/mutate/values/live-tenant-a.yaml",
        "--suite",
        "fixtures/mutate/suite",
        "--tier",
        "all",
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("--tier all"), "{out}");
    assert!(
        out.contains("no scenario of the --suite directories installs"),
        "{out}"
    );
}
