//! Benchmarks that print figures: our render (offline preparation, Helm, checks) against a
//! bare `helm template` of the same chart and values in the same run, in process and as whole
//! processes (what a user times: `keda-conformance render` against `helm template`).

use crate::chart::helm::{Helm, HelmMajor, TemplateRequest};
use crate::chart::source;
use crate::error::InputError;
use crate::render::{self, RenderOptions};
use crate::scenario::{self, Step};
use std::path::Path;
use std::time::{Duration, Instant};

/// One benchmark row.
#[derive(Debug, Clone)]
pub struct RenderRow {
    /// Scenario name.
    pub name: String,
    /// Median of our full render.
    pub ours: Duration,
    /// Median of bare `helm template`.
    pub bare: Duration,
    /// Median of a whole `keda-conformance render` process.
    pub ours_process: Duration,
    /// Median of a whole `helm template` process (same chart, values and capabilities).
    pub bare_process: Duration,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Times every scenario of the suite at `suite` `runs` times each.
///
/// # Errors
/// Input errors from loading the suite or rendering.
pub fn render(suite: &Path, runs: u32, helm: HelmMajor) -> Result<Vec<RenderRow>, InputError> {
    let scenarios = scenario::load_suite(suite)?;
    let h = Helm::locate(helm)?;
    let mut rows = Vec::new();
    for s in scenarios {
        let Some(Step::Render(step)) = s.steps.first() else {
            continue;
        };
        let opts = RenderOptions::for_scenario(&s, step.expected_headers(), helm);
        let prepared = source::prepare(&s.chart, s.version.as_deref())?;
        let mut ours = Vec::new();
        let mut bare = Vec::new();
        let mut ours_process = Vec::new();
        let mut bare_process = Vec::new();
        let exe = std::env::current_exe().map_err(|e| {
            InputError::in_environment(
                "bench render",
                e.to_string(),
                "run the keda-conformance binary itself",
            )
        })?;
        let home = crate::toolchain::cache_root().join("helm-home");
        let request = TemplateRequest {
            chart_dir: &prepared.dir,
            release: &s.release,
            namespace: &s.namespace,
            values_files: &s.values,
            sets: &s.set,
            capabilities: &opts.capabilities,
        };
        let helm_args = request.args();
        let mut our_args: Vec<String> = vec![
            "render".into(),
            format!("--chart={}", s.chart.display()),
            format!("--helm={}", helm.number()),
            format!("--release={}", s.release),
            format!("--namespace={}", s.namespace),
        ];
        if let Some(v) = &s.version {
            our_args.push(format!("--version={v}"));
        }
        our_args.extend(s.values.iter().map(|v| format!("--values={}", v.display())));
        our_args.extend(s.set.iter().map(|v| format!("--set={v}")));
        let time_process = |program: &Path, args: &[String], helm_env: bool| {
            let mut c = std::process::Command::new(program);
            c.args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            if helm_env {
                c.env("HELM_CACHE_HOME", home.join("cache"))
                    .env("HELM_CONFIG_HOME", home.join("config"))
                    .env("HELM_DATA_HOME", home.join("data"));
            }
            let t = Instant::now();
            let _ = c.status();
            t.elapsed()
        };
        for _ in 0..runs.max(1) {
            // Alternating pairs, so drift in the machine's load hits both sides alike.
            ours_process.push(time_process(&exe, &our_args, false));
            bare_process.push(time_process(&h.binary, &helm_args, true));
            let t = Instant::now();
            let _ = h.template(&request);
            bare.push(t.elapsed());
            let t = Instant::now();
            render::render(&opts)?;
            ours.push(t.elapsed());
        }
        rows.push(RenderRow {
            name: s.name.clone(),
            ours: median(ours),
            bare: median(bare),
            ours_process: median(ours_process),
            bare_process: median(bare_process),
        });
    }
    Ok(rows)
}

/// Formats rows as a table: in process, and as whole processes against the 1.2x target.
pub fn format_render(rows: &[RenderRow], helm: HelmMajor) -> String {
    let mut out = format!(
        "bench render ({}; medians of alternating runs; target: whole-process ratio <= 1.2)\n",
        helm.label()
    );
    out.push_str(&format!(
        "{:<52} {:>9} {:>9} {:>6} {:>10} {:>10} {:>6}\n",
        "scenario", "ours ms", "helm ms", "ratio", "proc ours", "proc helm", "ratio"
    ));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let mut process_ratios = Vec::new();
    for r in rows {
        let pr = ratio(r.ours_process, r.bare_process);
        process_ratios.push(pr);
        out.push_str(&format!(
            "{:<52} {:>9.1} {:>9.1} {:>5.2}x {:>10.1} {:>10.1} {:>5.2}x{}\n",
            r.name,
            r.ours.as_secs_f64() * 1e3,
            r.bare.as_secs_f64() * 1e3,
            ratio(r.ours, r.bare),
            r.ours_process.as_secs_f64() * 1e3,
            r.bare_process.as_secs_f64() * 1e3,
            pr,
            if pr > 1.2 { "  over target" } else { "" }
        ));
    }
    process_ratios.sort_by(|a, b| a.total_cmp(b));
    if let Some(m) = process_ratios.get(process_ratios.len() / 2) {
        out.push_str(&format!(
            "median whole-process ratio {m:.2}x (target <= 1.2x)\n"
        ));
    }
    out
}
