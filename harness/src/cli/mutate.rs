//! `mutate` and `bench mutate`: arguments to [`crate::mutate::MutateOptions`], the report to
//! its format, the score to an exit code.

use super::commands::{require_names, require_output_path, require_values_files};
use super::MutateArgs;
use crate::chart::capabilities::Capabilities;
use crate::chart::helm::HelmMajor;
use crate::checks::ExpectedHeader;
use crate::error::{exit_code, InputError};
use crate::mutate::{self, report, MutateOptions};
use crate::render::RenderOptions;
use std::path::{Path, PathBuf};

/// Arguments of `bench mutate`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchMutateArgs {
    /// Chart directory (default: the compactor fixture, fixtures/charts/compactor-1x, with
    /// its live tenant-a values and --expect-header X-Scope-OrgID=tenant-a).
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Values file (repeatable).
    #[arg(short = 'f', long = "values")]
    pub values: Vec<PathBuf>,
    /// A header every prometheus trigger must send, as Name=Value (repeatable).
    #[arg(long = "expect-header")]
    pub expect_header: Vec<String>,
    /// Helm major version: 3 or 4.
    #[arg(long, default_value = "3", value_parser = super::parse_helm)]
    pub helm: HelmMajor,
    /// Mutants rendered at once.
    #[arg(long, default_value_t = 2, value_parser = parse_jobs)]
    pub jobs: usize,
}

/// `--min-score`: a percentage from 0 to 100 (a trailing `%` is allowed).
pub(super) fn parse_min_score(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches('%').parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a percentage from 0 to 100 (e.g. --min-score 90)"
        )),
    }
}

/// `--jobs`: 1 to 32 mutants at once.
pub(super) fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=32).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number of mutants from 1 to 32")),
    }
}

fn options(
    chart: PathBuf,
    values: Vec<PathBuf>,
    sets: Vec<String>,
    names: (String, String),
    expect_header: &[String],
    helm: HelmMajor,
) -> Result<RenderOptions, InputError> {
    let expected_headers = expect_header
        .iter()
        .map(|h| ExpectedHeader::parse(h))
        .collect::<Result<Vec<_>, _>>()?;
    require_values_files(&values)?;
    require_names(&names.0, &names.1)?;
    Ok(RenderOptions {
        chart,
        version: None,
        values_files: values,
        sets,
        release: names.0,
        namespace: names.1,
        expected_headers,
        expect_scaled_object: false,
        helm,
        capabilities: Capabilities::default(),
    })
}

/// `mutate`.
pub(super) fn run(a: MutateArgs) -> Result<i32, InputError> {
    if let Some(out) = &a.out {
        require_output_path("--out", out)?;
    }
    let render = options(
        a.chart.clone(),
        a.values.clone(),
        a.set.clone(),
        (a.release.clone(), a.namespace.clone()),
        &a.expect_header,
        a.helm,
    )?;
    let helm = render.helm;
    let live_scenarios = if a.tier == crate::engine::Tier::All {
        let found = mutate::live::scenarios_for(&render.chart, &a.suite, helm)?;
        if found.is_empty() {
            return Err(InputError::in_flag(
                "--tier all",
                format!(
                    "no scenario of the --suite directories installs {} on Helm {} with live steps",
                    render.chart.display(),
                    helm.number()
                ),
                "pass --suite a directory with live scenarios whose `chart:` is this chart (or use --tier render)",
            ));
        }
        if a.provider == crate::provider::ProviderKind::Existing {
            return Err(InputError::in_flag(
                "--provider existing",
                "mutate's live tier makes its own cluster",
                "use --provider local or --provider kind",
            ));
        }
        found
    } else {
        Vec::new()
    };
    let mut report = mutate::run(&MutateOptions {
        render,
        suites: a.suite.clone(),
        operators: a.operators.clone(),
        jobs: a.jobs,
    })?;
    if !live_scenarios.is_empty() {
        report.live = Some(live_tier(&mut report, &live_scenarios, helm, &a)?);
    }
    let text = match a.format {
        report::Format::Text => report::text(&report, a.verbose),
        report::Format::Json => report::json(&report),
        report::Format::Junit => report::junit(&report),
    };
    match &a.out {
        Some(p) => std::fs::write(p, &text).map_err(|e| {
            InputError::in_flag(
                "--out",
                format!("cannot write {}: {e}", p.display()),
                "pass a writable path",
            )
        })?,
        None => print!("{}", crate::report::terminal_safe(&text)),
    }
    if report.live.as_ref().is_some_and(|l| l.interrupted) {
        eprintln!("mutate: interrupted during the live tier; unfinished runs judged nothing");
        return Ok(exit_code::INTERRUPTED);
    }
    let below = report.score().is_some_and(|s| s < a.min_score);
    if below {
        eprintln!(
            "mutation score {} is below --min-score {}%",
            report::score_text(&report),
            a.min_score
        );
    }
    Ok(if below {
        exit_code::FAILED
    } else {
        exit_code::PASS
    })
}

/// Starts a live environment for the scenarios, runs the survivors of `report` through them,
/// and stops the environment again (also when the tier fails).
fn live_tier(
    report: &mut mutate::MutationReport,
    scenarios: &[crate::scenario::Scenario],
    helm: HelmMajor,
    a: &MutateArgs,
) -> Result<mutate::live::LiveTier, InputError> {
    let survivors = report
        .mutants
        .iter()
        .filter(|m| m.status == mutate::Status::Survived)
        .count();
    if survivors == 0 {
        eprintln!("mutate: live tier: no survivor of the render tier, nothing to run live");
        return Ok(mutate::live::LiveTier {
            scenarios: scenarios.iter().map(|s| s.name.clone()).collect(),
            ..Default::default()
        });
    }
    let mut run_args = super::RunArgs::for_suite(
        a.suite.first().cloned().unwrap_or_default(),
        crate::engine::Tier::All,
        Some(helm),
        a.evidence.clone(),
    );
    run_args.provider = a.provider;
    run_args.parallel = a.parallel;
    let ctx = super::commands::start_live(scenarios, &run_args)?;
    let judged = mutate::live::judge_survivors(report, scenarios, helm, &ctx);
    let crate::engine::LiveContext { runtime, env, .. } = ctx;
    runtime.block_on(env.stop());
    judged
}

/// The fixtures directory: `./fixtures`, or the checkout's.
fn fixtures_dir() -> PathBuf {
    let local = PathBuf::from("fixtures");
    if local.join("charts").is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// `bench mutate`: the render tier's mutants per second on one chart.
pub(super) fn bench(a: BenchMutateArgs) -> Result<i32, InputError> {
    let (chart, values, headers) = match a.chart {
        Some(c) => (c, a.values, a.expect_header),
        None => {
            let f = fixtures_dir();
            (
                f.join("charts/compactor-1x"),
                if a.values.is_empty() {
                    vec![f.join("values/compactor-live-tenant-a.yaml")]
                } else {
                    a.values
                },
                if a.expect_header.is_empty() {
                    vec!["X-Scope-OrgID=tenant-a".to_string()]
                } else {
                    a.expect_header
                },
            )
        }
    };
    let render = options(
        chart.clone(),
        values,
        vec![],
        ("tempo".into(), "tempo".into()),
        &headers,
        a.helm,
    )?;
    let started = std::time::Instant::now();
    let r = mutate::run(&MutateOptions {
        render,
        suites: vec![],
        operators: vec![],
        jobs: a.jobs,
    })?;
    let wall = started.elapsed().as_secs_f64();
    let c = r.counts();
    let per_second = c.generated as f64 / r.timing.mutants_seconds.max(1e-9);
    println!(
        "bench mutate: {} ({}), {}, {} at once",
        r.chart,
        chart.display(),
        r.helm,
        r.timing.jobs
    );
    println!(
        "mutants generated {}, equivalent {}, killed {}, survived {}, errored {}",
        c.generated, c.equivalent, c.killed, c.survived, c.errored
    );
    println!(
        "rendered {} mutants ({} renders) in {:.2}s: {per_second:.1} mutants/s (goal >= 10/s on 2 cores){}",
        c.generated,
        r.timing.renders,
        r.timing.mutants_seconds,
        if per_second < 10.0 { " BELOW GOAL" } else { "" }
    );
    println!(
        "total wall {wall:.2}s (original render and templates {:.2}s); mutation score {}",
        r.timing.baseline_seconds,
        report::score_text(&r)
    );
    Ok(exit_code::PASS)
}
