//! The GitHub Action's main step (issue 16), run here as the action runs it: the test makes a
//! chart repository (a base commit on `main` holding our compactor fixture chart, its
//! keda-conformance config, values that turn the KEDA autoscaling on with tenant-a's
//! `X-Scope-OrgID`, and a one-scenario suite; then a pull request's commit on `pr`) and runs
//! `scripts/action/qualify.sh` in it with the environment the action's step gives it, the
//! runner's files (`GITHUB_STEP_SUMMARY`, `GITHUB_OUTPUT`, `RUNNER_TEMP`) pointing into the
//! test's temporary directory. A harmless change (a chart version bump) passes: exit 0, the
//! summary's table says pass, the outputs name the results. A change that makes the values
//! send another tenant fails: exit 1, one `::error` annotation on the values file's header
//! line (outside the `::stop-commands::` region, so the runner acts on it), and the summary
//! names the failing check. One Helm major, so each case is one live qualify. The harmless
//! change also runs with `provider: kind` (real pods), and the summary names that provider.

use keda_conformance::stack::process::pids_referencing;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_keda-conformance");
/// The one Helm major the action is asked for.
const HELM: &str = "4";
/// The chart directory and the values file, relative to the chart repository.
const CHART: &str = "charts/app";
const VALUES: &str = "charts/app/ci/keda-values.yaml";
/// The action's step is killed after this long.
const TIMEOUT: Duration = Duration::from_secs(600);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create chart dir");
    for entry in std::fs::read_dir(from).expect("read fixture chart") {
        let entry = entry.expect("fixture chart entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy chart file");
        }
    }
}

/// A command with no inherited variable of the runner, the action or git's own (a CI job
/// running these tests has GITHUB_*; a git hook has GIT_DIR).
fn clean_command(program: &str) -> Command {
    let mut c = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n.starts_with("GITHUB_")
            || n.starts_with("RUNNER_")
            || n.starts_with("ACTION_")
            || n.starts_with("GIT_")
            || n == "KEDA_CONFORMANCE_SUITES"
        {
            c.env_remove(&name);
        }
    }
    c
}

/// Runs git in `repo` (identity and signing given on the command line, nothing configured
/// globally) and returns its standard output.
fn git(repo: &Path, args: &[&str]) -> String {
    let o = clean_command("git")
        .args([
            "-c",
            "user.name=keda-conformance test",
            "-c",
            "user.email=test@keda-conformance.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(repo)
        .output()
        .expect("git runs");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
    std::fs::write(path, text).expect("write file");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replaces exactly one occurrence of `from` in the repository's file `file`.
fn edit(repo: &Path, file: &str, from: &str, to: &str) {
    let path = repo.join(file);
    let text = read(&path);
    assert_eq!(text.matches(from).count(), 1, "{file} holds one {from:?}");
    write(&path, &text.replacen(from, to, 1));
}

/// The chart repository in `<sandbox>/repo`: the base commit on `main`, then the `pr` branch
/// checked out (as actions/checkout leaves a pull request). Returns the base commit.
fn chart_repo(sandbox: &Path) -> String {
    let repo = sandbox.join("repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    git(&repo, &["init", "--quiet"]);
    let chart = repo.join(CHART);
    copy_dir(&root().join("fixtures/charts/compactor-1x"), &chart);
    write(
        &chart.join("ci/keda-conformance.yaml"),
        "# keda-conformance's config for this chart (docs/github-action.md)\n\
         values:\n  - ci/keda-values.yaml\n\
         expectHeaders: [X-Scope-OrgID=tenant-a]\n\
         suites: [ci/keda-suite]\n",
    );
    // The live fixture values: the compactor scales on tenant-a's backlog.
    let values = read(&root().join("fixtures/values/compactor-live-tenant-a.yaml"));
    assert!(values.contains("customHeaders: X-Scope-OrgID=tenant-a\n"));
    write(&repo.join(VALUES), &values);
    // The suite's scenario renders with values of its own, which the pull requests leave
    // alone: what fails the bad change is the config's expectHeaders, not the suite.
    write(&chart.join("ci/keda-suite-values/compactor.yaml"), &values);
    write(
        &chart.join("ci/keda-suite/sends-tenant-a.yaml"),
        &format!(
            "name: sends-tenant-a\n\
             description: the chart's compactor ScaledObject sends tenant-a's X-Scope-OrgID\n\
             proves: \"the compactor ScaledObject renders tenant-a's header\"\n\
             chart: ../..\n\
             values: [../keda-suite-values/compactor.yaml]\n\
             helm: [{HELM}]\n\
             steps:\n  \
               - render:\n      \
                   expect_headers: {{X-Scope-OrgID: tenant-a}}\n      \
                   target: {{kind: Deployment, name: tempo-tempo-compactor}}\n      \
                   replicas: {{min: 1, max: 5}}\n"
        ),
    );
    git(&repo, &["add", "--all"]);
    git(&repo, &["commit", "--quiet", "-m", "app: KEDA autoscaling"]);
    let base = git(&repo, &["rev-parse", "--short", "HEAD"]);
    git(&repo, &["checkout", "--quiet", "-b", "pr"]);
    base
}

fn commit_pr(sandbox: &Path, message: &str) {
    let repo = sandbox.join("repo");
    git(&repo, &["commit", "--quiet", "--all", "-m", message]);
}

/// What one run of the action's step left.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    summary: String,
    outputs: String,
    seconds: u64,
}

impl Run {
    /// The value of a `name=value` line of GITHUB_OUTPUT (the last one, as the runner reads it).
    fn output(&self, name: &str) -> Option<&str> {
        self.outputs
            .lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .next_back()
    }

    /// The `::error` lines the runner acts on: those outside a `::stop-commands::` region.
    fn annotations(&self) -> Vec<&str> {
        let mut stopped: Option<String> = None;
        let mut found = Vec::new();
        for line in self.stdout.lines() {
            match &stopped {
                Some(token) => {
                    if line == format!("::{token}::") {
                        stopped = None;
                    }
                }
                None => {
                    if let Some(token) = line.strip_prefix("::stop-commands::") {
                        stopped = Some(token.to_string());
                    } else if line.starts_with("::error") {
                        found.push(line);
                    }
                }
            }
        }
        found
    }

    fn context(&self) -> String {
        format!(
            "exit {:?} after {} s\n--- stdout\n{}\n--- stderr\n{}\n--- GITHUB_OUTPUT\n{}\n--- GITHUB_STEP_SUMMARY\n{}",
            self.code, self.seconds, self.stdout, self.stderr, self.outputs, self.summary
        )
    }
}

/// Runs `scripts/action/qualify.sh` as the action's qualify step does with the `provider`
/// input, in its own process group (killed after TIMEOUT: first SIGINT, which stops the live
/// stack, then SIGKILL).
fn run_action(sandbox: &Path, provider: &str) -> Run {
    let runner_temp = sandbox.join("runner");
    let tmp = sandbox.join("tmp");
    for d in [&runner_temp, &tmp] {
        std::fs::create_dir_all(d).expect("runner dirs");
    }
    let summary = sandbox.join("step-summary.md");
    let outputs = sandbox.join("github-output");
    File::create(&summary).expect("summary file");
    File::create(&outputs).expect("output file");
    let stdout = sandbox.join("stdout");
    let stderr = sandbox.join("stderr");
    let start = Instant::now();
    let mut child = clean_command("bash")
        .arg(root().join("scripts/action/qualify.sh"))
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", sandbox.join("repo"))
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_EVENT_NAME", "pull_request")
        .env("GITHUB_BASE_REF", "main")
        .env("GITHUB_HEAD_REF", "pr")
        .env("RUNNER_TEMP", &runner_temp)
        // The action's inputs, as its qualify step passes them (base-ref and config empty:
        // the pull request's base branch, the chart's ci/keda-conformance.yaml).
        .env("ACTION_CHART", CHART)
        .env("ACTION_CONFIG", "")
        .env("ACTION_BASE_REF", "")
        .env("ACTION_HELM", HELM)
        .env("ACTION_PROVIDER", provider)
        .env("ACTION_SOURCE", root())
        .env("KEDA_CONFORMANCE_BIN", BIN)
        .env("TMPDIR", &tmp)
        .env("NO_COLOR", "1")
        .current_dir(&tmp)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).expect("stdout file"))
        .stderr(File::create(&stderr).expect("stderr file"))
        .process_group(0)
        .spawn()
        .expect("bash runs");
    let group = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if start.elapsed() > TIMEOUT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let Some(status) = status else {
        let _ = killpg(group, Signal::SIGINT);
        let grace = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("wait").is_none() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait();
        panic!(
            "qualify.sh did not finish within {TIMEOUT:?}; killed\n--- stdout\n{}\n--- stderr\n{}",
            read(&stdout),
            read(&stderr)
        );
    };
    let run = Run {
        code: status.code(),
        stdout: read(&stdout),
        stderr: read(&stderr),
        summary: read(&summary),
        outputs: read(&outputs),
        seconds: start.elapsed().as_secs(),
    };
    eprintln!("qualify.sh: exit {:?} in {} s", run.code, run.seconds);
    // The step removed the base branch's worktree, and the live stack it started is gone.
    let worktrees = git(&sandbox.join("repo"), &["worktree", "list", "--porcelain"]);
    assert_eq!(
        worktrees.matches("worktree ").count(),
        1,
        "the base chart's worktree was left:\n{worktrees}\n{}",
        run.context()
    );
    // The live stack and the charts' temporary copies live in the step's TMPDIR: no process
    // may still use it and nothing may be left in it.
    let settle = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = pids_referencing(&tmp);
        let left: Vec<String> = std::fs::read_dir(&tmp)
            .expect("read TMPDIR")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        if pids.is_empty() && left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < settle,
            "the run left processes {pids:?} and files {left:?} in its TMPDIR\n{}",
            run.context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    run
}

/// The results directory the outputs name, with its JUnit report and Markdown summary.
fn assert_results(run: &Run, sandbox: &Path) {
    let results = run
        .output("results-dir")
        .unwrap_or_else(|| panic!("no results-dir output\n{}", run.context()));
    assert_eq!(
        Path::new(results),
        sandbox.join("runner/keda-conformance/results"),
        "{}",
        run.context()
    );
    let dir = Path::new(results).join(format!("ci_keda-values.yaml/helm{HELM}"));
    let junit = read(&dir.join("junit.xml"));
    assert!(junit.contains("<testcase"), "{junit}");
    let md = read(&dir.join("qualify.md"));
    assert!(
        run.summary.contains(md.trim()),
        "the summary holds qualify's own table:\n{md}\n{}",
        run.context()
    );
}

#[test]
fn a_harmless_change_passes_with_a_summary_and_outputs() {
    a_harmless_change_passes_on("local");
}

/// The same pull request with `provider: kind`: real pods in Docker (the engine that answers,
/// else the private dockerd the harness starts), and the summary says where it ran.
#[test]
fn a_harmless_change_passes_on_kind_with_real_pods() {
    a_harmless_change_passes_on("kind");
}

fn a_harmless_change_passes_on(provider: &str) {
    let sandbox = tempfile::tempdir().expect("tempdir");
    let s = sandbox.path();
    let base = chart_repo(s);
    edit(
        &s.join("repo"),
        "charts/app/Chart.yaml",
        "version: 1.48.0",
        "version: 1.48.1",
    );
    commit_pr(s, "app: 1.48.1");
    let run = run_action(s, provider);
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert_eq!(run.output("exit-code"), Some("0"), "{}", run.context());
    assert!(
        run.annotations().is_empty(),
        "no annotation on a passing change: {:?}",
        run.annotations()
    );
    for needle in [
        "## keda-conformance: `charts/app` passes".to_string(),
        format!("upgrade from `charts/app` at `main` ({base})"),
        format!("| `{VALUES}` | {HELM} | pass | pass |"),
        format!("| render tempo-distributed 1.48.1 | {HELM} | {provider} | pass |"),
        format!("| live scaling | {HELM} | {provider} | pass |"),
        format!("| upgrade from tempo-distributed 1.48.0 | {HELM} | {provider} | pass |"),
        format!("| keda-suite/sends-tenant-a | {HELM} | {provider} | pass |"),
        "| `trigger.expected-header` | pass |".to_string(),
    ] {
        assert!(
            run.summary.contains(&needle),
            "the summary lacks {needle:?}\n{}",
            run.context()
        );
    }
    assert!(!run.summary.contains("FAIL"), "{}", run.context());
    assert_results(&run, s);
}

#[test]
fn a_change_that_sends_another_tenant_fails_on_the_values_line() {
    let sandbox = tempfile::tempdir().expect("tempdir");
    let s = sandbox.path();
    let repo = s.join("repo");
    chart_repo(s);
    // The pull request moves the compactor to tenant-b (one line more above the header, so
    // the annotation must name the pull request's line, not the base's).
    edit(
        &repo,
        "charts/app/Chart.yaml",
        "version: 1.48.0",
        "version: 1.48.1",
    );
    edit(
        &repo,
        VALUES,
        "compactor:\n",
        "# The compactor's backlog is tenant-b's now.\ncompactor:\n",
    );
    edit(
        &repo,
        VALUES,
        "customHeaders: X-Scope-OrgID=tenant-a",
        "customHeaders: X-Scope-OrgID=tenant-b",
    );
    commit_pr(s, "app: scale on tenant-b's backlog");
    let values = read(&repo.join(VALUES));
    let header_line = values
        .lines()
        .position(|l| l.trim_start().starts_with("customHeaders:"))
        .expect("a customHeaders line")
        + 1;
    let base_line = read(&root().join("fixtures/values/compactor-live-tenant-a.yaml"))
        .lines()
        .position(|l| l.trim_start().starts_with("customHeaders:"))
        .expect("a customHeaders line")
        + 1;
    assert_ne!(header_line, base_line);

    let run = run_action(s, "local");
    assert_eq!(run.code, Some(1), "{}", run.context());
    assert_eq!(run.output("exit-code"), Some("1"), "{}", run.context());
    // One annotation: render's, on the header's line. qualify passes (it checks the headers
    // the values ask for, and the suite has values of its own), so it adds none.
    let annotations = run.annotations();
    assert_eq!(annotations.len(), 1, "{annotations:?}\n{}", run.context());
    let (props, message) = annotations[0]
        .strip_prefix("::error ")
        .and_then(|a| a.split_once("::"))
        .unwrap_or_else(|| panic!("not an annotation: {}", annotations[0]));
    let prop = |name: &str| {
        props
            .split(',')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {props}"))
    };
    assert_eq!(prop("file"), VALUES, "{props}");
    assert_eq!(prop("line"), header_line.to_string(), "{props}");
    assert!(prop("title").contains("trigger.expected-header"), "{props}");
    assert!(
        message.contains("\"tenant-b\", expected \"tenant-a\""),
        "{message}"
    );
    for needle in [
        "## keda-conformance: `charts/app` fails".to_string(),
        format!("| `{VALUES}` | {HELM} | **FAIL** | pass |"),
        "### keda-conformance render: tempo-distributed 1.48.1 fails".to_string(),
        "| `trigger.expected-header` | FAIL |".to_string(),
        format!("| keda-suite/sends-tenant-a | {HELM} | local | pass |"),
    ] {
        assert!(
            run.summary.contains(&needle),
            "the summary lacks {needle:?}\n{}",
            run.context()
        );
    }
    assert_results(&run, s);
}
