//! Benchmarks that print figures: our render (offline preparation, Helm, checks) against a
//! bare `helm template` of the same chart and values in the same run.

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
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            let _ = h.template(&TemplateRequest {
                chart_dir: &prepared.dir,
                release: &s.release,
                namespace: &s.namespace,
                values_files: &s.values,
                sets: &s.set,
                capabilities: &opts.capabilities,
            });
            bare.push(t.elapsed());
            let t = Instant::now();
            render::render(&opts)?;
            ours.push(t.elapsed());
        }
        rows.push(RenderRow {
            name: s.name.clone(),
            ours: median(ours),
            bare: median(bare),
        });
    }
    Ok(rows)
}

/// Formats rows as a table with the ratio and the 1.5x target.
pub fn format_render(rows: &[RenderRow], helm: HelmMajor) -> String {
    let mut out = format!(
        "bench render ({}; median of runs; target ratio <= 1.5)\n",
        helm.label()
    );
    out.push_str(&format!(
        "{:<44} {:>10} {:>10} {:>7}\n",
        "scenario", "ours ms", "helm ms", "ratio"
    ));
    for r in rows {
        let ratio = r.ours.as_secs_f64() / r.bare.as_secs_f64().max(1e-9);
        out.push_str(&format!(
            "{:<44} {:>10.1} {:>10.1} {:>6.2}x{}\n",
            r.name,
            r.ours.as_secs_f64() * 1e3,
            r.bare.as_secs_f64() * 1e3,
            ratio,
            if ratio > 1.5 { "  over target" } else { "" }
        ));
    }
    out
}
