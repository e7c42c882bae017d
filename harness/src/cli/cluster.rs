//! `cluster up|status|down|gc` and `bench stack`: argument handling and output only; the work
//! is in [`crate::provider::local`].
//!
//! `cluster up` blocks until the cluster is ready, prints the kubeconfig path on standard
//! output (progress goes to standard error), then keeps the cluster running until Ctrl-C
//! (exit 130) or until a component dies (exit 1). With `--detach` it starts the same command
//! as a background owner in its own session, relays its progress, prints the kubeconfig path
//! once ready and returns 0; `cluster down --name NAME` stops it.

use crate::error::{exit_code, InputError};
use crate::provider::local::{self, BenchRun, LocalOptions};
use crate::provider::{registry, ProviderError, ProviderKind};
use crate::stack::config::{go_duration, parse_duration};
use crate::stack::{HpaTiming, NodeResources, StackConfig};
use std::io::BufRead;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// `cluster` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Start a cluster; print its kubeconfig path once ready; keep it running until Ctrl-C
    /// (or, with --detach, in the background until `cluster down`).
    Up(UpArgs),
    /// List clusters, running and stale, with their kubeconfig paths.
    Status,
    /// Stop a cluster and remove its run directory.
    Down {
        /// The cluster (default: the only one).
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove clusters whose owner process is gone (kill leftovers, delete run directories).
    Gc,
}

/// Arguments of `cluster up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Which provider makes the cluster.
    #[arg(long, value_enum, default_value = "local")]
    pub provider: ProviderKind,
    /// Number of fake (kwok) nodes; hard hostname anti-affinity needs nodes >= replicas.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub nodes: u32,
    /// The cluster's name (unique among running clusters).
    #[arg(long, default_value = "local")]
    pub name: String,
    /// Keep the run directory (logs, etcd data, PKI) after the cluster stops; `cluster gc`
    /// removes it.
    #[arg(long)]
    pub keep: bool,
    /// Return once ready, leaving the cluster running in a background process.
    #[arg(long)]
    pub detach: bool,
    /// kube-controller-manager --horizontal-pod-autoscaler-sync-period.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub hpa_sync_period: Duration,
    /// kube-controller-manager --horizontal-pod-autoscaler-downscale-stabilization.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub hpa_downscale_stabilization: Duration,
    /// kube-controller-manager --horizontal-pod-autoscaler-tolerance (0 to 1).
    #[arg(long, default_value_t = 0.1, value_parser = parse_tolerance)]
    pub hpa_tolerance: f64,
    /// Allocatable CPU of each node.
    #[arg(long, default_value = "16")]
    pub node_cpu: String,
    /// Allocatable memory of each node.
    #[arg(long, default_value = "64Gi")]
    pub node_memory: String,
    /// Maximum pods per node.
    #[arg(long, default_value = "110")]
    pub node_pods: String,
    /// Deadline for each readiness condition.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Internal: run as the background owner started by --detach.
    #[arg(long, hide = true)]
    pub daemon: bool,
}

impl UpArgs {
    fn options(&self) -> LocalOptions {
        LocalOptions {
            name: self.name.clone(),
            keep: self.keep,
            stack: StackConfig {
                nodes: self.nodes,
                node_resources: NodeResources {
                    cpu: self.node_cpu.clone(),
                    memory: self.node_memory.clone(),
                    pods: self.node_pods.clone(),
                },
                hpa: HpaTiming {
                    sync_period: self.hpa_sync_period,
                    downscale_stabilization: self.hpa_downscale_stabilization,
                    tolerance: self.hpa_tolerance,
                },
                ready_timeout: self.timeout,
            },
        }
    }

    /// The arguments that make a background owner start the same cluster.
    fn daemon_args(&self) -> Vec<String> {
        let mut args = vec![
            "cluster".to_string(),
            "up".into(),
            "--daemon".into(),
            format!("--provider={}", self.provider.as_str()),
            format!("--nodes={}", self.nodes),
            format!("--name={}", self.name),
            format!("--hpa-sync-period={}", go_duration(self.hpa_sync_period)),
            format!(
                "--hpa-downscale-stabilization={}",
                go_duration(self.hpa_downscale_stabilization)
            ),
            format!("--hpa-tolerance={}", self.hpa_tolerance),
            format!("--node-cpu={}", self.node_cpu),
            format!("--node-memory={}", self.node_memory),
            format!("--node-pods={}", self.node_pods),
            format!("--timeout={}", go_duration(self.timeout)),
        ];
        if self.keep {
            args.push("--keep".into());
        }
        args
    }
}

/// Runs a `cluster` subcommand.
pub(super) fn run(command: ClusterCommand) -> Result<i32, InputError> {
    match command {
        ClusterCommand::Up(a) if a.detach => detach(&a),
        ClusterCommand::Up(a) => up(&a),
        ClusterCommand::Status => status(),
        ClusterCommand::Down { name } => down(name.as_deref()),
        ClusterCommand::Gc => gc(),
    }
}

use super::runtime;

/// Prints a provider error with its causes and returns the exit code (2: setup failure);
/// input errors go back to the caller, which prints them the usual way.
fn fail(e: ProviderError) -> Result<i32, InputError> {
    if let ProviderError::Input(input) = e {
        return Err(input);
    }
    eprintln!("error: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
    Ok(exit_code::BAD_INPUT)
}

fn redirect_output(log: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)?;
    nix::unistd::dup2_stdout(&file).map_err(std::io::Error::from)?;
    nix::unistd::dup2_stderr(&file).map_err(std::io::Error::from)
}

fn up(a: &UpArgs) -> Result<i32, InputError> {
    match a.provider {
        ProviderKind::Local => {}
        ProviderKind::Kind => {
            return Err(InputError::in_flag(
                "--provider kind",
                "`cluster up` starts only local clusters; a kind cluster lives as long as the run that creates it",
                "use `keda-conformance run --provider kind`",
            ))
        }
        ProviderKind::Existing => {
            return Err(InputError::in_flag(
                "--provider existing",
                "an existing cluster is not brought up by the harness",
                "use `keda-conformance run --provider existing --kubeconfig <file>` to run scenarios on it",
            ))
        }
    }
    registry::validate_name(&a.name)?;
    if a.daemon {
        // Its own session: the terminal's Ctrl-C and hangup no longer reach it.
        let _ = nix::unistd::setsid();
    }
    let options = a.options();
    let rt = runtime()?;
    rt.block_on(async {
        eprintln!(
            "starting {} cluster {:?} with {} node(s)",
            a.provider.as_str(),
            a.name,
            a.nodes
        );
        let progress = |line: &str| eprintln!("  {line}");
        let cluster = match local::up(&options, &progress).await {
            Ok(c) => c,
            Err(e) => {
                let removed = matches!(e, ProviderError::Start { .. }) && !a.keep;
                let code = fail(e);
                if removed {
                    eprintln!("  hint: the run directory is gone; pass --keep to keep its logs");
                }
                return code;
            }
        };
        let c = cluster.cluster();
        eprintln!(
            "cluster {:?} ready in {:.1}s: server {}",
            c.name,
            cluster.control_plane().timings().total.as_secs_f64(),
            c.server
        );
        println!("{}", c.kubeconfig.display());
        if a.daemon {
            let log = cluster.control_plane().layout().logs.join("owner.log");
            // Closing the pipe to the detaching parent is what tells it we are ready.
            if let Err(e) = redirect_output(&log) {
                eprintln!("error: cannot redirect output to {}: {e}", log.display());
                return Ok(exit_code::BAD_INPUT);
            }
        } else {
            eprintln!(
                "export KUBECONFIG={}\nCtrl-C stops the cluster{}",
                c.kubeconfig.display(),
                if cluster.kept() {
                    format!(" (its run directory {} is kept)", c.run_dir.display())
                } else {
                    " and removes its run directory".to_string()
                }
            );
        }
        let exit = cluster.supervise().await;
        eprintln!(
            "error: {} exited ({}) while cluster {:?} was running; log: {}\n{}",
            exit.component,
            exit.status,
            options.name,
            exit.log.display(),
            exit.tail
        );
        drop(cluster);
        Ok(exit_code::FAILED)
    })
}

fn detach(a: &UpArgs) -> Result<i32, InputError> {
    registry::validate_name(&a.name)?;
    crate::stack::Binaries::locate()?;
    let exe = std::env::current_exe().map_err(|e| {
        InputError::in_environment("keda-conformance", e.to_string(), "run it from a file path")
    })?;
    let mut child = std::process::Command::new(&exe)
        .args(a.daemon_args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            InputError::in_environment(
                exe.display().to_string(),
                format!("cannot start the background owner: {e}"),
                "check that the binary is executable",
            )
        })?;
    if let Some(stderr) = child.stderr.take() {
        for line in std::io::BufReader::new(stderr).lines() {
            match line {
                Ok(l) => eprintln!("{l}"),
                Err(_) => break,
            }
        }
    }
    // The pipe closed: the owner either redirected its output (ready) or exited.
    let owner = child.id();
    let ready = registry::list().into_iter().find_map(|e| {
        e.record.filter(|r| {
            e.live && r.owner_pid == owner && r.name == a.name && r.phase == registry::Phase::Ready
        })
    });
    match ready {
        Some(record) => {
            println!("{}", record.kubeconfig.display());
            eprintln!(
                "cluster {:?} runs in the background (owner pid {owner}); stop it with \
                 `keda-conformance cluster down --name {}`",
                a.name, a.name
            );
            Ok(exit_code::PASS)
        }
        None => {
            let status = child.wait().ok().and_then(|s| s.code());
            Ok(status.unwrap_or(exit_code::BAD_INPUT).max(1))
        }
    }
}

fn age(secs: Option<u64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) => format!("{}h", s / 3600),
    }
}

fn status() -> Result<i32, InputError> {
    let clusters = local::status();
    if clusters.is_empty() {
        eprintln!(
            "no clusters (run directories live in {})",
            registry::root().display()
        );
        return Ok(exit_code::PASS);
    }
    println!(
        "{:<20} {:<8} {:>5} {:>8} {:>5}  {:<24} KUBECONFIG",
        "NAME", "STATE", "NODES", "OWNER", "AGE", "SERVER"
    );
    for c in clusters {
        println!(
            "{:<20} {:<8} {:>5} {:>8} {:>5}  {:<24} {}",
            c.name,
            c.state,
            c.nodes.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            c.owner_pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            age(c.age_secs),
            c.server.unwrap_or_else(|| "-".into()),
            c.kubeconfig
                .map(|k| k.display().to_string())
                .unwrap_or_else(|| c.run_dir.display().to_string()),
        );
    }
    Ok(exit_code::PASS)
}

fn down(name: Option<&str>) -> Result<i32, InputError> {
    if let Some(n) = name {
        registry::validate_name(n)?;
    }
    let rt = runtime()?;
    match rt.block_on(local::down(name, Duration::from_secs(30))) {
        Ok(names) => {
            for n in names {
                eprintln!("stopped cluster {n:?}");
            }
            Ok(exit_code::PASS)
        }
        Err(e) => fail(e),
    }
}

fn gc() -> Result<i32, InputError> {
    for root in crate::cleanup::temp_roots() {
        for dir in crate::cleanup::gc_temp_dirs(&root) {
            eprintln!("removed orphaned temporary directory {}", dir.display());
        }
    }
    for cluster in crate::provider::kind::gc_blocking() {
        eprintln!(
            "removed kind cluster {cluster:?} (its owner is gone), its containers and network"
        );
    }
    match local::gc() {
        Ok(removed) if removed.is_empty() => {
            eprintln!("nothing to remove");
            Ok(exit_code::PASS)
        }
        Ok(removed) => {
            for c in removed {
                eprintln!("removed cluster {:?} ({})", c.name, c.run_dir.display());
            }
            Ok(exit_code::PASS)
        }
        Err(e) => fail(e),
    }
}

/// `--hpa-tolerance`: a finite fraction from 0 to 1.
fn parse_tolerance(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && (0.0..=1.0).contains(&t) => Ok(t),
        _ => Err(format!("{s:?} is not a tolerance from 0 to 1 (e.g. 0.1)")),
    }
}

/// Runs `bench stack`.
pub(super) fn bench_stack(nodes: u32, runs: u32) -> Result<i32, InputError> {
    let rt = runtime()?;
    match rt.block_on(local::bench(nodes.max(1), runs.max(1))) {
        Ok(results) => {
            print!("{}", format_bench(&results, nodes.max(1)));
            Ok(exit_code::PASS)
        }
        Err(e) => fail(e),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The `bench stack` report: per-run phase timings, the median cold-to-ready time, and the
/// largest resident memory seen per component.
pub fn format_bench(runs: &[BenchRun], nodes: u32) -> String {
    let s = |d: Duration| format!("{:.1}s", d.as_secs_f64());
    let mut out = format!(
        "bench stack: cold start to ready with cached binaries, {nodes} node(s), {} run(s)\n",
        runs.len()
    );
    out += &format!(
        "{:>3} {:>8} {:>6} {:>10} {:>7} {:>7} {:>7}\n",
        "run", "prepare", "etcd", "apiserver", "nodes", "leases", "total"
    );
    for (i, r) in runs.iter().enumerate() {
        let t = r.timings;
        out += &format!(
            "{:>3} {:>8} {:>6} {:>10} {:>7} {:>7} {:>7}\n",
            i + 1,
            s(t.prepare),
            s(t.etcd),
            s(t.apiserver),
            s(t.nodes),
            s(t.controllers),
            s(t.total)
        );
    }
    let mut totals: Vec<Duration> = runs.iter().map(|r| r.timings.total).collect();
    totals.sort();
    if let Some(median) = totals.get(totals.len() / 2) {
        out += &format!("cold-to-ready: median {} (target <= 20s)\n", s(*median));
    }
    let mut peak: Vec<(String, u64)> = Vec::new();
    for r in runs {
        for (name, bytes) in &r.rss {
            match peak.iter_mut().find(|(n, _)| n == name) {
                Some(entry) => entry.1 = entry.1.max(*bytes),
                None => peak.push((name.clone(), *bytes)),
            }
        }
    }
    out += "resident memory right after ready (VmRSS, largest of the runs):\n";
    for (name, bytes) in &peak {
        out += &format!("  {name:<24} {:>9}\n", mib(*bytes));
    }
    let total: u64 = peak.iter().map(|(_, b)| b).sum();
    out += &format!(
        "  {:<24} {:>9} (budget <= 2.5 GiB once KEDA and Cortex are added)\n",
        "total",
        mib(total)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::StartupTimings;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(subcommand)]
        command: ClusterCommand,
    }

    #[test]
    fn up_defaults_match_the_library_defaults() {
        let w = Wrapper::try_parse_from(["x", "up"]).unwrap();
        let ClusterCommand::Up(a) = w.command else {
            panic!("not up")
        };
        let o = a.options();
        assert_eq!(o.name, "local");
        assert_eq!(o.stack, StackConfig::default());
        assert!(!o.keep && !a.detach && !a.daemon);
    }

    #[test]
    fn daemon_args_round_trip_to_the_same_options() {
        let w = Wrapper::try_parse_from([
            "x",
            "up",
            "--nodes=3",
            "--name=d1",
            "--keep",
            "--hpa-sync-period=2s",
            "--hpa-downscale-stabilization=1m",
            "--hpa-tolerance=0.05",
            "--timeout=90s",
            "--detach",
        ])
        .unwrap();
        let ClusterCommand::Up(a) = w.command else {
            panic!("not up")
        };
        let mut argv = vec!["x".to_string()];
        argv.extend(a.daemon_args().into_iter().skip(1));
        let again = Wrapper::try_parse_from(argv).unwrap();
        let ClusterCommand::Up(b) = again.command else {
            panic!("not up")
        };
        assert!(b.daemon && !b.detach);
        assert_eq!(a.options(), b.options());
        assert_eq!(
            b.options().stack.hpa.downscale_stabilization,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn bench_report_shows_median_and_total_memory() {
        let run = |total: u64, rss: u64| BenchRun {
            timings: StartupTimings {
                total: Duration::from_secs(total),
                ..Default::default()
            },
            rss: vec![("etcd".into(), rss), ("kube-apiserver".into(), 3 * rss)],
        };
        let text = format_bench(&[run(9, 10 << 20), run(7, 20 << 20), run(8, 5 << 20)], 1);
        assert!(text.contains("median 8.0s"), "{text}");
        assert!(text.contains("etcd"), "{text}");
        assert!(text.contains("80 MiB"), "{text}");
    }
}
