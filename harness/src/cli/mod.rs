//! Command-line interface: argument parsing and dispatch; exit codes 0 pass, 1 failed, 2 bad
//! input, 130 interrupted.

mod bench;
mod cluster;
mod commands;
mod mutate;
mod plan;
mod qualify;
mod repro;

pub use cluster::{ClusterCommand, UpArgs};

use crate::chart::helm::HelmMajor;
use crate::error::exit_code;
use crate::report::Format;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Conformance harness for Helm charts that autoscale with KEDA.
///
/// Exit codes: 0 every check passed; 1 a check or scenario failed (evidence printed);
/// 2 bad input or environment (the message names the file, line or flag and the fix);
/// 130 interrupted (SIGINT/SIGTERM; a live run writes the evidence it has first).
#[derive(Debug, Parser)]
#[command(name = "keda-conformance", version, about, long_about = None)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render a chart with real Helm and check the KEDA objects it produces.
    Render(RenderArgs),
    /// Run scenarios from a suite (default: suites/default).
    Run(RunArgs),
    /// List suites and their scenarios.
    List(ListArgs),
    /// Show what is installed or cached, what is missing and the command that provides it.
    Doctor,
    /// Reproduce a bug report: render the user's values, derive a scenario, run it live and
    /// print a verdict to paste into the issue.
    Repro(ReproArgs),
    /// Release qualification: render and live checks on both Helm majors, and an upgrade from
    /// the previous chart version; a summary table in text, Markdown and JUnit.
    Qualify(QualifyArgs),
    /// Run a suite N times and report pass/fail per scenario, the flake rate and the spread
    /// of verdict latencies.
    Soak(SoakArgs),
    /// Print performance figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Start, list, stop and clean up local clusters (real control plane, kwok nodes).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Mutation testing: mutate the chart's autoscaling templates one line at a time and
    /// report which mutants the render checks and the suite's expectations miss.
    Mutate(MutateArgs),
}

/// Arguments of `mutate`.
#[derive(Debug, clap::Args)]
pub struct MutateArgs {
    /// Chart directory (copied; the original is never modified).
    #[arg(long)]
    pub chart: PathBuf,
    /// Values file that enables the autoscaling under test (repeatable, later files win).
    #[arg(short = 'f', long = "values")]
    pub values: Vec<PathBuf>,
    /// Set a value, as `helm --set` (repeatable).
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// Release name.
    #[arg(long, default_value = "tempo")]
    pub release: String,
    /// Namespace.
    #[arg(long, default_value = "tempo")]
    pub namespace: String,
    /// A header every prometheus trigger must send, as Name=Value (repeatable).
    #[arg(long = "expect-header")]
    pub expect_header: Vec<String>,
    /// A suite whose scenarios for this chart judge every mutant too (repeatable).
    #[arg(long)]
    pub suite: Vec<PathBuf>,
    /// Only this operator (repeatable; default: all).
    #[arg(long = "operator")]
    pub operators: Vec<String>,
    /// Helm major version for every render: 3 or 4.
    #[arg(long, default_value = "3", value_parser = parse_helm)]
    pub helm: HelmMajor,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: crate::mutate::report::Format,
    /// Write the report to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit 1 when the mutation score is below this percentage (default 0: report only).
    #[arg(long, default_value_t = 0.0, value_parser = mutate::parse_min_score)]
    pub min_score: f64,
    /// Mutants rendered at once.
    #[arg(long, default_value_t = 2, value_parser = mutate::parse_jobs)]
    pub jobs: usize,
    /// List killed and equivalent mutants too.
    #[arg(short, long)]
    pub verbose: bool,
    /// `render` (default: every mutant through the render judges, offline) or `all` (then the
    /// survivors through the `--suite` scenarios' live steps, on a cluster).
    #[arg(long, value_enum, default_value = "render")]
    pub tier: crate::engine::Tier,
    /// Where the live tier runs: `local` (hermetic, pods simulated by kwok) or `kind` (real
    /// pods in Docker).
    #[arg(long, value_enum, default_value = "local")]
    pub provider: crate::provider::ProviderKind,
    /// Evidence directory of the live tier (one subdirectory per scenario run).
    #[arg(long, default_value = "out")]
    pub evidence: PathBuf,
    /// How many live scenario runs at once.
    #[arg(long, default_value_t = 3, value_parser = parse_parallel)]
    pub parallel: usize,
}

/// Arguments of `render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Chart directory, packaged chart (.tgz), or a directory of packaged charts with --version.
    #[arg(long)]
    pub chart: PathBuf,
    /// Chart version (must match the chart; selects <name>-<version>.tgz in a directory).
    #[arg(long)]
    pub version: Option<String>,
    /// Values file (repeatable, later files win).
    #[arg(short = 'f', long = "values")]
    pub values: Vec<PathBuf>,
    /// Set a value, as `helm --set` (repeatable).
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// Release name.
    #[arg(long, default_value = "tempo")]
    pub release: String,
    /// Namespace.
    #[arg(long, default_value = "tempo")]
    pub namespace: String,
    /// A header every prometheus trigger must send, as Name=Value (repeatable).
    #[arg(long = "expect-header")]
    pub expect_header: Vec<String>,
    /// Helm major version: 3 or 4.
    #[arg(long, default_value = "3", value_parser = parse_helm)]
    pub helm: HelmMajor,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Show passing findings too.
    #[arg(short, long)]
    pub verbose: bool,
    /// Cluster capabilities to render for.
    #[command(flatten)]
    pub capabilities: CapabilityArgs,
}

/// Standard output closed early (`keda-conformance run | head`) or a full disk makes Rust's
/// printing panic. Instead: everything started is stopped and removed, and the process exits
/// 141 for a closed pipe (as a shell reports SIGPIPE) or 2 for any other write error, with one
/// line on standard error.
fn exit_quietly_when_output_fails() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to std") {
            crate::cleanup::run_cleanup();
            if message.contains("Broken pipe") {
                std::process::exit(141);
            }
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("error: cannot write the output: {message}\n").as_bytes(),
            );
            std::process::exit(exit_code::BAD_INPUT);
        }
        default(info);
    }));
}

/// `--parallel`: 1 to 32 scenarios at once.
fn parse_parallel(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=32).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number of scenarios from 1 to 32")),
    }
}

/// The capabilities of the cluster to render for (`.Capabilities` in templates).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CapabilityArgs {
    /// Kubernetes version the chart is rendered for (default: the local provider's).
    #[arg(long = "kube-version")]
    pub kube_version: Option<String>,
    /// API versions the cluster serves beyond Kubernetes' own, as Helm's flag (repeatable or
    /// comma-separated; default: KEDA's, as a cluster with KEDA installed serves them).
    #[arg(long = "api-versions")]
    pub api_versions: Vec<String>,
}

impl CapabilityArgs {
    /// The validated capabilities.
    ///
    /// # Errors
    /// An [`crate::error::InputError`] naming the malformed flag.
    pub fn resolve(
        &self,
    ) -> Result<crate::chart::capabilities::Capabilities, crate::error::InputError> {
        crate::chart::capabilities::Capabilities::from_flags(
            self.kube_version.as_deref(),
            &self.api_versions,
        )
    }
}

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A scenario file or a directory of them.
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// Run only scenarios whose name contains this text (repeat for any of several).
    #[arg(long)]
    pub filter: Vec<String>,
    /// Also write a JUnit report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Only this Helm major (default: what each scenario names).
    #[arg(long, value_parser = parse_helm)]
    pub helm: Option<HelmMajor>,
    /// Output format on standard output.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Show passing findings too.
    #[arg(short, long)]
    pub verbose: bool,
    /// Which tiers to run: `render` (offline) or `all` (render, then live steps on a cluster).
    #[arg(long, value_enum, default_value = "all")]
    pub tier: crate::engine::Tier,
    /// Where live steps run.
    #[arg(long, value_enum, default_value = "local")]
    pub provider: crate::provider::ProviderKind,
    /// Fake nodes of the local cluster (default: the largest `live.nodes` of the scenarios, or 5).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub nodes: Option<u32>,
    /// Evidence directory (timelines for every live scenario, full evidence for failures).
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Keep the cluster's run directory (logs, etcd data) after the run.
    #[arg(long)]
    pub keep: bool,
    /// How many live scenarios run at once (each has its own namespace and backend).
    #[arg(long, default_value_t = 3, value_parser = parse_parallel)]
    pub parallel: usize,
    /// Print the exact plan (commands, charts, manifests, what is deleted afterwards) and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Existing provider: the kubeconfig of the cluster to use.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Existing provider: the kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Kind provider: your kind cluster configuration (e.g. your CI's 1 control plane + 2
    /// workers); the harness adds its pod network and HPA timing (default: one node per
    /// replica the scenarios need).
    #[arg(long)]
    pub kind_config: Option<PathBuf>,
    /// Existing provider: run KEDA as host processes against the cluster when it has none
    /// (removed again at the end).
    #[arg(long)]
    pub install_keda: bool,
    /// Existing provider: the cluster's HPA sync period, for deadlines (default 15s).
    #[arg(long, value_parser = crate::stack::config::parse_duration)]
    pub hpa_sync_period: Option<std::time::Duration>,
    /// Existing provider: the cluster's HPA downscale stabilization window (default 5m).
    #[arg(long, value_parser = crate::stack::config::parse_duration)]
    pub hpa_downscale_stabilization: Option<std::time::Duration>,
}

/// Arguments of `repro`.
#[derive(Debug, clap::Args)]
pub struct ReproArgs {
    /// Chart directory or packaged chart (.tgz).
    #[arg(long)]
    pub chart: PathBuf,
    /// Chart version (must match the chart).
    #[arg(long)]
    pub version: Option<String>,
    /// The values file from the report (repeatable).
    #[arg(short = 'f', long = "values", required = true)]
    pub values: Vec<PathBuf>,
    /// Tenants to seed (default: the X-Scope-OrgID the chart renders).
    #[arg(long = "tenant")]
    pub tenants: Vec<String>,
    /// A YAML list of {tenant, series, per_ready_pod} to seed instead of the default backlog.
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Helm major version.
    #[arg(long, default_value = "3", value_parser = parse_helm)]
    pub helm: HelmMajor,
    /// Release name.
    #[arg(long, default_value = "tempo")]
    pub release: String,
    /// Evidence directory.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Write the derived scenario here (to add it to suites/ as a regression test).
    #[arg(long)]
    pub save_scenario: Option<PathBuf>,
    /// `all` (default) renders and runs the derived scenario live, also after a render check
    /// failed (KEDA's own error is evidence a maintainer wants); `render` stops after the
    /// render checks (seconds, offline).
    #[arg(long, value_enum, default_value = "all")]
    pub tier: crate::engine::Tier,
    /// Where the live tier runs: `local` (hermetic, pods simulated by kwok) or `kind` (real
    /// pods in Docker).
    #[arg(long, value_enum, default_value = "local")]
    pub provider: crate::provider::ProviderKind,
    /// Cluster capabilities to render for.
    #[command(flatten)]
    pub capabilities: CapabilityArgs,
}

/// Arguments of `qualify`.
#[derive(Debug, clap::Args)]
pub struct QualifyArgs {
    /// The chart to release (directory or .tgz).
    #[arg(long)]
    pub chart: PathBuf,
    /// The previous release of the chart, to test `helm upgrade` from. When it scales another
    /// workload (another lineage, e.g. the 1.x compactor Deployment before the 3.x
    /// backend-worker StatefulSet), the upgrade is reported across lineages.
    #[arg(long)]
    pub previous: Option<PathBuf>,
    /// Values that enable the autoscaling under test in --chart (repeatable).
    #[arg(short = 'f', long = "values", required = true)]
    pub values: Vec<PathBuf>,
    /// Values for --previous when its keys differ from --chart's (another lineage reads
    /// compactor.autoscaling.* where 3.x reads backendWorker.autoscaling.*; repeatable;
    /// default: the -f files).
    #[arg(short = 'F', long = "previous-values", requires = "previous")]
    pub previous_values: Vec<PathBuf>,
    /// A suite whose scenarios run against --chart (repeatable; default: suites/default when
    /// it exists). Scenarios of another lineage are reported as not applicable.
    #[arg(long)]
    pub suite: Vec<PathBuf>,
    /// How many live scenarios run at once (each has its own namespace and backend).
    #[arg(long, default_value_t = 3, value_parser = parse_parallel)]
    pub parallel: usize,
    /// Only this Helm major (default: both).
    #[arg(long, value_parser = parse_helm)]
    pub helm: Option<HelmMajor>,
    /// Write the summary as Markdown here (to paste into a release pull request).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write a JUnit report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Evidence directory.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Where the live tier runs: `local` (hermetic, pods simulated by kwok) or `kind` (real
    /// pods in Docker).
    #[arg(long, value_enum, default_value = "local")]
    pub provider: crate::provider::ProviderKind,
    /// Cluster capabilities to render for.
    #[command(flatten)]
    pub capabilities: CapabilityArgs,
}

/// Arguments of `soak`.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How many times to run the suite.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub runs: u32,
    /// A scenario file or a directory of them (default: suites/default).
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// Which tiers to run.
    #[arg(long, value_enum, default_value = "all")]
    pub tier: crate::engine::Tier,
    /// Only this Helm major.
    #[arg(long, value_parser = parse_helm)]
    pub helm: Option<HelmMajor>,
}

/// Arguments of `list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// A scenario file or a directory of them (default: every suite under suites/).
    #[arg(long)]
    pub suite: Option<PathBuf>,
}

/// `bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Our render (Helm plus checks) against a bare `helm template` of each fixture chart.
    Render {
        /// Repetitions per chart.
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// Helm major version.
        #[arg(long, default_value = "3", value_parser = parse_helm)]
        helm: HelmMajor,
    },
    /// Cold-to-ready time and resident memory of the local stack (cached binaries).
    Stack {
        /// Fake nodes per cluster.
        #[arg(long, default_value_t = 1)]
        nodes: u32,
        /// Clusters to bring up, one after another.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// Runs the live scenarios of a suite and prints each expect_replicas step's verdict
    /// latency against its bound (one HPA sync period, plus pollingInterval when activating
    /// from 0 and the downscale stabilization window when scaling down), and the suite's wall
    /// time.
    Live {
        /// A scenario file or a directory of them (default: suites/default).
        #[arg(long)]
        suite: Option<PathBuf>,
    },
    /// `bench live` on the kind provider, after the time of each start phase: Docker, the
    /// image pipeline (a warm cache check; a cold one builds everything), cluster create to
    /// Ready, KEDA Ready as pods.
    Kind {
        /// A scenario file or a directory of them (default: suites/default).
        #[arg(long)]
        suite: Option<PathBuf>,
    },
    /// Mutants per second of `mutate`'s render tier (default: the compactor fixture).
    Mutate(mutate::BenchMutateArgs),
}

fn parse_helm(s: &str) -> Result<HelmMajor, String> {
    HelmMajor::parse(s).ok_or_else(|| format!("{s:?} is not a Helm major version; use 3 or 4"))
}

/// Parses the process arguments, runs the command, and returns the exit code.
pub fn main() -> i32 {
    crate::cleanup::install_interrupt_handler();
    exit_quietly_when_output_fails();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit_code::PASS
                }
                _ => exit_code::BAD_INPUT,
            };
        }
    };
    let result = match cli.command {
        Command::Render(a) => commands::render(a),
        Command::Run(a) => commands::run(a),
        Command::List(a) => commands::list(a),
        Command::Doctor => commands::doctor(),
        Command::Bench(BenchCommand::Render { runs, helm }) => bench::bench_render(runs, helm),
        Command::Bench(BenchCommand::Stack { nodes, runs }) => cluster::bench_stack(nodes, runs),
        Command::Bench(BenchCommand::Live { suite }) => {
            bench::bench_live(suite, crate::provider::ProviderKind::Local)
        }
        Command::Bench(BenchCommand::Kind { suite }) => {
            bench::bench_live(suite, crate::provider::ProviderKind::Kind)
        }
        Command::Cluster(c) => cluster::run(c),
        Command::Repro(a) => repro::run(a),
        Command::Soak(a) => bench::soak(a),
        Command::Qualify(a) => qualify::run(a),
        Command::Bench(BenchCommand::Mutate(a)) => bench::bench_mutate(a),
        Command::Mutate(a) => mutate::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", crate::report::terminal_safe(&e.to_string()));
            exit_code::BAD_INPUT
        }
    }
}

/// The async runtime every command that talks to a cluster runs on: two workers (the machine
/// kind this targets has two cores), timers and I/O enabled.
///
/// # Errors
/// An [`InputError`] when the threads cannot be created.
fn runtime() -> Result<tokio::runtime::Runtime, crate::error::InputError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            crate::error::InputError::in_environment(
                "tokio runtime",
                e.to_string(),
                "check the machine's thread limits (ulimit -u)",
            )
        })
}
