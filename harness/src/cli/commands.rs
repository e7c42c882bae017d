//! One function per command: turn arguments into library calls and reports into exit codes.

use super::{ListArgs, RenderArgs, RunArgs};
use crate::chart::helm::{Helm, HelmMajor};
use crate::checks::{ExpectedHeader, Status};
use crate::error::{exit_code, InputError};
use crate::render::{self, RenderOptions};
use crate::report::{self, Format};
use crate::{engine, scenario, toolchain};
use std::path::{Path, PathBuf};

fn write_out(text: &str, out: Option<&Path>) -> Result<(), InputError> {
    match out {
        Some(p) => std::fs::write(p, text).map_err(|e| {
            InputError::in_flag(
                "--out",
                format!("cannot write {}: {e}", p.display()),
                "pass a writable path",
            )
        }),
        None => {
            print!("{}", crate::report::terminal_safe(text));
            Ok(())
        }
    }
}

/// Checks before a run that a report file can be written where `flag` says: its directory
/// exists and the path is not a directory (a long live run must not fail at its very end).
pub(super) fn require_output_path(flag: &str, path: &std::path::Path) -> Result<(), InputError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let problem = if path.is_dir() {
        Some(format!("{} is a directory", path.display()))
    } else if !parent.is_dir() {
        Some(format!("the directory {} does not exist", parent.display()))
    } else {
        None
    };
    match problem {
        Some(p) => Err(InputError::in_flag(
            flag,
            p,
            "pass a file path in an existing directory",
        )),
        None => Ok(()),
    }
}

/// Checks `--release` and `--namespace` before Helm sees them.
pub(super) fn require_names(release: &str, namespace: &str) -> Result<(), InputError> {
    if let Some(problem) = crate::names::release_problem(release) {
        return Err(InputError::in_flag(
            "--release",
            problem,
            "pass a release name such as --release tempo",
        ));
    }
    if let Some(problem) = crate::names::namespace_problem(namespace) {
        return Err(InputError::in_flag(
            "--namespace",
            problem,
            "pass a namespace such as --namespace tempo",
        ));
    }
    Ok(())
}

pub(super) fn render(a: RenderArgs) -> Result<i32, InputError> {
    let expected_headers = a
        .expect_header
        .iter()
        .map(|h| ExpectedHeader::parse(h))
        .collect::<Result<Vec<_>, _>>()?;
    require_values_files(&a.values)?;
    require_names(&a.release, &a.namespace)?;
    let opts = RenderOptions {
        chart: a.chart,
        version: a.version,
        values_files: a.values,
        sets: a.set,
        release: a.release,
        namespace: a.namespace,
        expected_headers,
        expect_scaled_object: false,
        helm: a.helm,
        capabilities: a.capabilities.resolve()?,
    };
    let (chart, values) = (opts.chart.clone(), opts.values_files.clone());
    let report = render::render(&opts)?;
    let text = match a.format {
        Format::Text => report::render_text(&report, a.verbose),
        Format::Json => report::render_json(&report),
        Format::Junit => report::render_junit(&report),
        Format::Github => {
            let redactor = crate::redact::for_renders(&[&report]);
            step_summary(&report::github::render_summary(&report, &redactor))?;
            format!(
                "::group::keda-conformance render {}\n{}::endgroup::\n{}",
                report.chart,
                report::render_text(&report, a.verbose),
                report::github::render_annotations(&report, &values, &chart, &redactor)
            )
        }
    };
    write_out(&text, a.out.as_deref())?;
    Ok(if report.status() == Status::Fail {
        exit_code::FAILED
    } else {
        exit_code::PASS
    })
}

/// Appends to `$GITHUB_STEP_SUMMARY` when it is set.
fn step_summary(text: &str) -> Result<(), InputError> {
    report::github::append_step_summary(text)
        .map(|_| ())
        .map_err(|e| {
            InputError::in_environment(
                "GITHUB_STEP_SUMMARY",
                format!("cannot append the summary: {e}"),
                "point GITHUB_STEP_SUMMARY at a writable file, or unset it",
            )
        })
}

/// The suites directory: `$KEDA_CONFORMANCE_SUITES`, `./suites`, or the checkout's.
pub(super) fn suites_dir() -> PathBuf {
    if let Ok(d) = std::env::var("KEDA_CONFORMANCE_SUITES") {
        return PathBuf::from(d);
    }
    let local = PathBuf::from("suites");
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites")
}

pub(super) fn run(a: RunArgs) -> Result<i32, InputError> {
    if let Some(j) = &a.junit {
        require_output_path("--junit", j)?;
    }
    let suite = a
        .suite
        .clone()
        .unwrap_or_else(|| suites_dir().join("default"));
    let mut scenarios = scenario::load_suite(&suite)?;
    if !a.filter.is_empty() {
        scenarios.retain(|s| a.filter.iter().any(|f| s.name.contains(f.as_str())));
        if scenarios.is_empty() {
            return Err(InputError::in_flag(
                format!("--filter {}", a.filter.join(" --filter ")),
                "no scenario name contains it",
                "run `keda-conformance list` to see the names",
            ));
        }
    }
    if a.dry_run {
        print!("{}", super::plan::plan(&scenarios, &a)?);
        return Ok(exit_code::PASS);
    }
    let results = run_suite_once(&scenarios, &a)?;
    let text = match a.format {
        Format::Text => report::run_text(&results, a.verbose),
        Format::Json => report::run_json(&results),
        Format::Junit => report::run_junit(&results),
        Format::Github => {
            step_summary(&report::github::run_summary(&results))?;
            format!(
                "::group::keda-conformance run\n{}::endgroup::\n{}",
                report::run_text(&results, a.verbose),
                report::github::run_annotations(&results)
            )
        }
    };
    print!("{}", report::terminal_safe(&text));
    if let Some(j) = &a.junit {
        std::fs::write(j, report::run_junit(&results)).map_err(|e| {
            InputError::in_flag(
                "--junit",
                format!("cannot write {}: {e}", j.display()),
                "pass a writable path",
            )
        })?;
    }
    let interrupted = crate::cleanup::stop_token().is_stopped();
    if interrupted {
        eprintln!(
            "interrupted: the environment was stopped; partial evidence is in {}",
            a.out.display()
        );
    }
    Ok(exit_code::of(results.iter().all(|r| r.passed), interrupted))
}

/// The nodes the live environment gets: `--nodes`, else the most any scenario asks for
/// (hard anti-affinity needs one per replica), else 5.
pub(super) fn live_nodes(scenarios: &[scenario::Scenario], a: &RunArgs) -> u32 {
    a.nodes.unwrap_or_else(|| {
        scenarios
            .iter()
            .filter_map(|s| s.live.nodes)
            .max()
            .unwrap_or(5)
    })
}

/// Starts the live environment once for every scenario of the run.
pub(super) fn start_live(
    scenarios: &[scenario::Scenario],
    a: &RunArgs,
) -> Result<engine::LiveContext, InputError> {
    let nodes = live_nodes(scenarios, a);
    let runtime = super::runtime()?;
    create_out_dir(&a.out)?;
    let env = match a.provider {
        crate::provider::ProviderKind::Kind => {
            let config = match &a.kind_config {
                Some(path) => {
                    let config = crate::provider::kind::config::from_file(path)?;
                    if config.nodes < nodes {
                        eprintln!("warning: {} has {} node(s); the scenarios ask for {nodes} (hard anti-affinity leaves the extra replicas Pending)", path.display(), config.nodes);
                    }
                    config
                }
                None => crate::provider::kind::config::for_nodes(nodes),
            };
            start_kind_env(&runtime, config)?
        }
        crate::provider::ProviderKind::Existing => {
            let kubeconfig = a.kubeconfig.clone().ok_or_else(|| {
                InputError::in_flag(
                    "--provider existing",
                    "needs a kubeconfig",
                    "pass --kubeconfig <file> (or set KUBECONFIG)",
                )
            })?;
            if !kubeconfig.is_file() {
                return Err(InputError::in_file(
                    &kubeconfig,
                    None,
                    None,
                    "kubeconfig does not exist",
                    "pass --kubeconfig an existing file",
                ));
            }
            let hpa = crate::stack::HpaTiming {
                sync_period: a
                    .hpa_sync_period
                    .unwrap_or(std::time::Duration::from_secs(15)),
                downscale_stabilization: a
                    .hpa_downscale_stabilization
                    .unwrap_or(std::time::Duration::from_secs(300)),
                tolerance: 0.1,
            };
            eprintln!(
                "using the existing cluster in {} (context {})",
                kubeconfig.display(),
                a.context.as_deref().unwrap_or("current")
            );
            // Interrupts while KEDA is installed are graceful: the start removes what it
            // created on the user's cluster before the process exits.
            let graceful = crate::cleanup::GracefulStop::begin();
            let started = runtime.block_on(crate::live::env::LiveEnv::start_existing(
                &kubeconfig,
                a.context.as_deref(),
                a.install_keda,
                hpa,
            ));
            drop(graceful);
            if let Err(crate::live::env::EnvError::Interrupted) = started {
                eprintln!("interrupted while KEDA was being installed; everything it had created on the cluster was removed");
                drop(runtime);
                crate::cleanup::run_cleanup();
                std::process::exit(exit_code::INTERRUPTED);
            }
            started.map_err(|e| match e {
                crate::live::env::EnvError::Input(i) => i,
                other => InputError::in_environment(
                    "--provider existing",
                    other.to_string(),
                    "check the cluster and the log named above",
                ),
            })?
        }
        crate::provider::ProviderKind::Local => {
            let name = format!("run-{}", std::process::id());
            start_local_env(&runtime, &name, nodes, a.keep)?
        }
    };
    Ok(engine::LiveContext {
        runtime,
        env,
        out_dir: a.out.clone(),
        parallel: a.parallel,
    })
}

pub(super) fn list(a: ListArgs) -> Result<i32, InputError> {
    let suites: Vec<PathBuf> = match a.suite {
        Some(s) => vec![s],
        None => {
            let dir = suites_dir();
            let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| {
                    InputError::in_flag(
                        "--suite",
                        format!("cannot read {}: {e}", dir.display()),
                        "pass --suite",
                    )
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            v.sort();
            v
        }
    };
    for s in suites {
        println!("suite {}", s.display());
        for sc in scenario::load_suite(&s)? {
            let helms: Vec<String> = sc.helm.iter().map(|h| h.0.number().to_string()).collect();
            println!(
                "  {:<44} helm {:<5} {}",
                sc.name,
                helms.join(","),
                sc.description
            );
        }
    }
    Ok(exit_code::PASS)
}

pub(super) fn doctor() -> Result<i32, InputError> {
    let mut missing = 0;
    println!("cache: {}", toolchain::cache_root().display());
    for major in [HelmMajor::V3, HelmMajor::V4] {
        match Helm::locate(major).and_then(|h| {
            h.version().map_err(|e| {
                InputError::in_environment(
                    major.label(),
                    e.to_string(),
                    "rebuild it with scripts/build-component.sh",
                )
            })
        }) {
            Ok(v) => println!("  ok       {} -> {v}", major.label()),
            Err(e) => {
                missing += 1;
                println!(
                    "  missing  {}: {}\n           fix: {}",
                    major.label(),
                    e.problem,
                    e.fix
                );
            }
        }
    }
    match toolchain::keda_crd_dir() {
        Ok(d) => println!(
            "  ok       KEDA {} CRDs -> {}",
            toolchain::KEDA_VERSION,
            d.display()
        ),
        Err(e) => {
            missing += 1;
            println!(
                "  missing  KEDA {} CRDs: {}\n           fix: {}",
                toolchain::KEDA_VERSION,
                e.problem,
                e.fix
            );
        }
    }
    for tool in ["go", "cargo-nextest"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false)
            || toolchain::cache_root().join("bin").join(tool).is_file();
        if found {
            println!("  ok       {tool}");
        } else {
            missing += 1;
            println!("  missing  {tool}\n           fix: run scripts/setup.sh");
        }
    }
    if missing == 0 {
        println!("everything the render tier needs is present");
        Ok(exit_code::PASS)
    } else {
        println!("{missing} missing; `scripts/setup.sh` provides all of them");
        Ok(exit_code::BAD_INPUT)
    }
}

/// A path as an absolute string (for derived scenarios written elsewhere).
pub(super) fn absolute(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// Every values file given with -f must exist.
pub(super) fn require_values_files(files: &[PathBuf]) -> Result<(), InputError> {
    match files.iter().find(|f| !f.is_file()) {
        Some(f) => Err(InputError::in_file(
            f,
            None,
            None,
            if f.is_dir() {
                "is a directory, not a values file"
            } else if f.exists() {
                "is not a regular file (a pipe or device cannot be a values file)"
            } else {
                "values file does not exist"
            },
            "pass an existing values file with -f",
        )),
        None => Ok(()),
    }
}

/// Runs the scenarios once: starts the live environment when live steps need it, runs the
/// engine, and stops the environment again (also when the engine fails).
pub(super) fn run_suite_once(
    scenarios: &[scenario::Scenario],
    a: &RunArgs,
) -> Result<Vec<engine::ScenarioResult>, InputError> {
    let needs_live = a.tier == engine::Tier::All
        && scenarios
            .iter()
            .any(|s| s.steps.iter().any(|st| st.is_live()));
    let live = if needs_live {
        Some(start_live(scenarios, a)?)
    } else {
        None
    };
    let results = engine::run(scenarios, a.helm, live.as_ref());
    if let Some(ctx) = live {
        let engine::LiveContext { runtime, env, .. } = ctx;
        runtime.block_on(env.stop());
    }
    results
}

/// Starts the local live environment (cluster, KEDA) named `name`, relaying its progress.
///
/// # Errors
/// An [`InputError`] pointing at `scripts/setup-stack.sh` and the component's log.
fn start_local_env(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    nodes: u32,
    keep: bool,
) -> Result<crate::live::env::LiveEnv, InputError> {
    eprintln!("starting the live tier: local provider, {nodes} nodes, KEDA {}, Mimir-API backend Cortex {}", toolchain::KEDA.version(), toolchain::CORTEX.version());
    runtime
        .block_on(crate::live::env::LiveEnv::start_local(
            name,
            nodes,
            keep,
            &|line| eprintln!("  {line}"),
        ))
        .map_err(|e| {
            InputError::in_environment(
                "live tier",
                e.to_string(),
                "run `scripts/setup-stack.sh`; see the component log named above",
            )
        })
}

/// Starts a kind live environment (Docker, images, cluster, KEDA as pods), relaying its
/// progress.
///
/// # Errors
/// An [`InputError`] (exit 2) naming what is missing or what failed.
fn start_kind_env(
    runtime: &tokio::runtime::Runtime,
    config: crate::provider::kind::config::KindConfig,
) -> Result<crate::live::env::LiveEnv, InputError> {
    eprintln!("starting the live tier: kind provider (real pods), KEDA {} as pods, Mimir-API backend Cortex {} as containers", toolchain::KEDA.version(), toolchain::CORTEX.version());
    runtime
        .block_on(crate::live::env::LiveEnv::start_kind(config, &|line| {
            eprintln!("  {line}")
        }))
        .map_err(|e| match e {
            crate::live::env::EnvError::Input(i) => i,
            other => InputError::in_environment(
                "--provider kind",
                other.to_string(),
                "see the message above; `keda-conformance cluster gc` removes what a killed run left",
            ),
        })
}

/// A runtime and a live environment (cluster, KEDA) of `provider` for commands that run
/// derived scenarios (`repro`, `qualify`).
///
/// # Errors
/// An [`InputError`] for the existing provider (these commands make their own cluster) or
/// when the environment does not start.
pub(super) fn derived_live(
    provider: crate::provider::ProviderKind,
    name: &str,
    nodes: u32,
) -> Result<(tokio::runtime::Runtime, crate::live::env::LiveEnv), InputError> {
    let runtime = super::runtime()?;
    let env = match provider {
        crate::provider::ProviderKind::Local => start_local_env(
            &runtime,
            &format!("{name}-{}", std::process::id()),
            nodes,
            false,
        )?,
        crate::provider::ProviderKind::Kind => {
            start_kind_env(&runtime, crate::provider::kind::config::for_nodes(nodes))?
        }
        crate::provider::ProviderKind::Existing => {
            return Err(InputError::in_flag(
                "--provider existing",
                format!("`{name}` makes its own cluster"),
                "use --provider local or --provider kind (or `run --provider existing` with a saved scenario)",
            ))
        }
    };
    Ok((runtime, env))
}

impl RunArgs {
    /// A run of `suite` on the local provider with every other option at its default, for
    /// commands that drive `run` themselves (`soak`, `bench live`).
    pub(super) fn for_suite(
        suite: PathBuf,
        tier: engine::Tier,
        helm: Option<HelmMajor>,
        out: PathBuf,
    ) -> Self {
        Self {
            suite: Some(suite),
            filter: Vec::new(),
            junit: None,
            helm,
            format: Format::Text,
            verbose: false,
            tier,
            provider: crate::provider::ProviderKind::Local,
            nodes: None,
            out,
            keep: false,
            dry_run: false,
            parallel: 3,
            kubeconfig: None,
            context: None,
            kind_config: None,
            install_keda: false,
            hpa_sync_period: None,
            hpa_downscale_stabilization: None,
        }
    }
}

/// Creates the `--out` directory (and its parents).
///
/// # Errors
/// An [`InputError`] naming `--out` when it cannot be created.
pub(super) fn create_out_dir(dir: &std::path::Path) -> Result<(), InputError> {
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(InputError::in_flag(
            "--out",
            format!(
                "{} is a symbolic link; evidence is not written through links",
                dir.display()
            ),
            "pass the directory itself (or a path that does not exist yet)",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        InputError::in_flag(
            "--out",
            format!("cannot create {}: {e}", dir.display()),
            "pass a writable directory",
        )
    })
}
