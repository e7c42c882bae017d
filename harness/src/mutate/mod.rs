//! Chart mutation testing: how strong is a chart's autoscaling test suite?
//!
//! The chart is copied to a private temporary directory (the user's chart is only read),
//! rendered once with the given values to find the templates that render autoscaling objects
//! ([`scope`]), and mutated by named operators that model real regressions ([`operators`]),
//! one line per mutant. Every mutant is rendered by every judge ([`judge`]: the command line's
//! expectations and the render steps of suite scenarios for this chart), two at a time. A
//! mutant is killed when a judge fails on it where the original passed, equivalent when every
//! judge renders it byte for byte like the original, and otherwise it survives. [`report`]
//! prints the score and the survivors in text, JSON or JUnit. With `--tier all`, [`live`] runs
//! the suites' live scenarios on every survivor.

pub mod gotmpl;
pub mod judge;
pub mod live;
pub mod operators;
pub mod report;
pub mod scope;
pub mod workspace;

use crate::error::InputError;
use crate::keda::manifest;
use crate::render::RenderOptions;
use judge::{Judge, Verdict};
use operators::Mutant;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use workspace::{Applied, Workspace};

/// What to mutate and how to judge it.
#[derive(Debug, Clone)]
pub struct MutateOptions {
    /// The render of the command line: chart directory, values, `--set`s, release,
    /// namespace, expected headers, Helm major.
    pub render: RenderOptions,
    /// Suites whose scenarios for this chart judge the mutants too.
    pub suites: Vec<PathBuf>,
    /// Only these operators (all when empty).
    pub operators: Vec<String>,
    /// Mutants rendered at once.
    pub jobs: usize,
}

/// What became of a mutant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A judge failed on it where the original passes.
    Killed,
    /// Its render differs from the original's and every judge still passes.
    Survived,
    /// Every judge renders it exactly like the original: dropped from the score.
    Equivalent,
    /// It could not be judged (the copy could not be written, a render could not start).
    Errored,
}

/// One mutant and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct MutantResult {
    /// The mutant.
    #[serde(flatten)]
    pub mutant: Mutant,
    /// What became of it.
    pub status: Status,
    /// The judge that killed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed_by: Option<String>,
    /// Why it was killed, survived or errored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What its render changed, for a survivor (objects and field paths).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

/// Counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Mutants generated.
    pub generated: usize,
    /// Killed.
    pub killed: usize,
    /// Survived.
    pub survived: usize,
    /// Equivalent (dropped).
    pub equivalent: usize,
    /// Errored.
    pub errored: usize,
}

/// Wall times and work done.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timing {
    /// Rendering the original with every judge, and finding the templates under test.
    pub baseline_seconds: f64,
    /// Rendering and judging every mutant.
    pub mutants_seconds: f64,
    /// Renders of mutants (one per judge run).
    pub renders: usize,
    /// Mutants judged at once.
    pub jobs: usize,
}

/// The outcome of a mutation run.
#[derive(Debug, Clone, Serialize)]
pub struct MutationReport {
    /// Chart name and version.
    pub chart: String,
    /// The chart directory as given.
    pub chart_dir: PathBuf,
    /// Helm used.
    pub helm: String,
    /// The judges, in the order they run.
    pub judges: Vec<String>,
    /// The template regions under test.
    pub regions: Vec<scope::Region>,
    /// Failures the original chart already has (they kill nothing).
    pub original_failures: Vec<String>,
    /// Every mutant, in id order.
    pub mutants: Vec<MutantResult>,
    /// Times.
    pub timing: Timing,
    /// The live tier on the survivors (`--tier all`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<live::LiveTier>,
    /// Removes secrets the original render holds from every output.
    #[serde(skip)]
    pub redactor: crate::redact::Redactor,
}

impl MutationReport {
    /// Counts by status.
    pub fn counts(&self) -> Counts {
        let n = |s: Status| self.mutants.iter().filter(|m| m.status == s).count();
        Counts {
            generated: self.mutants.len(),
            killed: n(Status::Killed),
            survived: n(Status::Survived),
            equivalent: n(Status::Equivalent),
            errored: n(Status::Errored),
        }
    }

    /// killed / (killed + survived), as a percentage; `None` when no mutant changed a render.
    pub fn score(&self) -> Option<f64> {
        let c = self.counts();
        let judged = c.killed + c.survived;
        (judged > 0).then(|| 100.0 * c.killed as f64 / judged as f64)
    }
}

/// Checks that `chart` is a chart directory.
fn require_chart_dir(chart: &Path) -> Result<(), InputError> {
    let problem = if !chart.exists() {
        "chart directory does not exist"
    } else if chart.is_file() {
        "is a file: mutation testing works on an unpacked chart directory"
    } else if !chart.join("Chart.yaml").is_file() {
        "directory has no Chart.yaml"
    } else {
        return Ok(());
    };
    Err(InputError::in_file(
        chart,
        None,
        None,
        problem,
        "pass --chart the directory that holds Chart.yaml (unpack a .tgz with `tar xzf`)",
    ))
}

/// Runs mutation testing.
///
/// # Errors
/// An [`InputError`] (exit 2) for a missing chart directory, unreadable values, an unknown
/// operator, a suite that does not load, a chart that does not render with these values, or
/// one that renders nothing to autoscale.
pub fn run(opts: &MutateOptions) -> Result<MutationReport, InputError> {
    let chart = &opts.render.chart;
    require_chart_dir(chart)?;
    if let Some(bad) = opts
        .operators
        .iter()
        .find(|o| operators::by_name(o).is_none())
    {
        return Err(InputError::in_flag(
            format!("--operator {bad}"),
            "no operator has this name",
            format!(
                "use one of: {}",
                operators::OPERATORS
                    .iter()
                    .map(|o| o.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let started = Instant::now();
    let mut judges = vec![Judge::command(opts.render.clone())];
    judges.extend(judge::scenarios_for(chart, &opts.suites, opts.render.helm)?);
    let ws = Workspace::new(chart, opts.jobs.max(1))?;
    let pristine = ws.copy(0);
    let first = judges[0].run(pristine)?;
    let (chart_label, helm_label) = first
        .report
        .as_ref()
        .map(|r| (r.chart.clone(), r.helm.clone()))
        .unwrap_or_default();
    if let Some(f) = first
        .report
        .iter()
        .flat_map(|r| &r.verdict.findings)
        .find(|f| f.check == "chart.renders" && f.status == crate::checks::Status::Fail)
    {
        return Err(InputError::in_file(
            chart,
            None,
            None,
            format!(
                "the chart does not render with these values: {}",
                f.evidence.first().map_or(f.message.as_str(), |e| e.trim())
            ),
            "make `keda-conformance render` pass on the original chart first",
        ));
    }
    let manifests = manifest::split(&first.rendered).unwrap_or_default();
    judges[0].expect_scaled_object(manifests.iter().any(|m| m.is_keda("ScaledObject")));
    let mut originals: Vec<Verdict> = vec![first];
    for j in &judges[1..] {
        originals.push(j.run(pristine)?);
    }
    for o in &mut originals {
        o.objects = judge::objects(&o.rendered);
    }
    let files = scope::template_files(pristine).map_err(|e| {
        InputError::in_file(
            chart.join("templates"),
            None,
            None,
            format!("cannot read the templates: {e}"),
            "make the chart's templates readable",
        )
    })?;
    let found = scope::find(&files, &manifests);
    let autoscales = found
        .regions
        .iter()
        .any(|r| r.roles.iter().any(|role| *role != scope::Role::Workload));
    if !autoscales {
        return Err(InputError::in_flag(
            "-f",
            "with these values the chart renders no ScaledObject, TriggerAuthentication or HorizontalPodAutoscaler: nothing to mutate",
            "pass -f values that enable the chart's autoscaling (as `keda-conformance render` shows)",
        ));
    }
    let mutants = operators::generate(&files, &found, &opts.operators);
    let baseline_seconds = started.elapsed().as_secs_f64();
    let texts: BTreeMap<&str, &str> = files
        .iter()
        .map(|f| (f.path.as_str(), f.text.as_str()))
        .collect();
    eprintln!(
        "mutate: judging {} mutants with {} judge(s), {} at once",
        mutants.len(),
        judges.len(),
        ws.workers()
    );
    let started = Instant::now();
    let renders = AtomicUsize::new(0);
    let results = judge_all(&mutants, &ws, &judges, &originals, &texts, &renders);
    let redactor = crate::redact::for_renders(
        &originals
            .iter()
            .filter_map(|o| o.report.as_ref())
            .collect::<Vec<_>>(),
    );
    let mut original_failures: Vec<String> = originals
        .iter()
        .zip(&judges)
        .flat_map(|(o, j)| o.failures.values().map(move |d| format!("{}: {d}", j.name)))
        .collect();
    original_failures.dedup();
    Ok(MutationReport {
        chart: chart_label,
        chart_dir: chart.clone(),
        helm: helm_label,
        judges: judges.iter().map(|j| j.name.clone()).collect(),
        regions: found.regions,
        original_failures,
        mutants: results,
        timing: Timing {
            baseline_seconds,
            mutants_seconds: started.elapsed().as_secs_f64(),
            renders: renders.load(Ordering::SeqCst),
            jobs: ws.workers(),
        },
        live: None,
        redactor,
    })
}

/// Judges every mutant, one worker per chart copy.
fn judge_all(
    mutants: &[Mutant],
    ws: &Workspace,
    judges: &[Judge],
    originals: &[Verdict],
    texts: &BTreeMap<&str, &str>,
    renders: &AtomicUsize,
) -> Vec<MutantResult> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<MutantResult>>> = Mutex::new(vec![None; mutants.len()]);
    std::thread::scope(|s| {
        for w in 0..ws.workers().min(mutants.len().max(1)) {
            let (next, slots) = (&next, &slots);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(m) = mutants.get(i) else {
                    break;
                };
                let r = judge_one(m, ws.copy(w), judges, originals, texts, renders);
                if let Ok(mut slots) = slots.lock() {
                    slots[i] = Some(r);
                }
            });
        }
    });
    let slots = slots.into_inner().unwrap_or_else(|e| e.into_inner());
    mutants
        .iter()
        .zip(slots)
        .map(|(m, r)| r.unwrap_or_else(|| errored(m, "the worker judging it stopped".into())))
        .collect()
}

fn errored(m: &Mutant, why: String) -> MutantResult {
    MutantResult {
        mutant: m.clone(),
        status: Status::Errored,
        killed_by: None,
        reason: Some(why),
        changes: vec![],
    }
}

/// Writes the mutant into the copy at `dir`, runs the judges until one kills it, and puts the
/// original file back.
fn judge_one(
    m: &Mutant,
    dir: &Path,
    judges: &[Judge],
    originals: &[Verdict],
    texts: &BTreeMap<&str, &str>,
    renders: &AtomicUsize,
) -> MutantResult {
    let Some(original) = texts.get(m.file.as_str()) else {
        return errored(m, format!("{} is not a template of the chart", m.file));
    };
    let _applied = match Applied::write(dir, m, original) {
        Ok(a) => a,
        Err(e) => return errored(m, format!("cannot write the mutant into the copy: {e}")),
    };
    let mut changed: Option<Vec<String>> = None;
    let mut differing = 0;
    let mut same_objects = 0;
    for (j, o) in judges.iter().zip(originals) {
        renders.fetch_add(1, Ordering::SeqCst);
        let v = match j.run(dir) {
            Ok(v) => v,
            Err(e) => return errored(m, format!("{}: {e}", j.name)),
        };
        if v.failures == o.failures {
            if v.rendered == o.rendered {
                continue;
            }
            if o.objects.is_some() && judge::objects(&v.rendered) == o.objects {
                same_objects += 1;
                continue;
            }
        }
        differing += 1;
        if let Some(why) = judge::new_failure(o, &v) {
            return MutantResult {
                mutant: m.clone(),
                status: Status::Killed,
                killed_by: Some(j.name.clone()),
                reason: Some(why.to_string()),
                changes: vec![],
            };
        }
        if changed.is_none() {
            changed = Some(judge::changes(&o.rendered, &v.rendered, 4));
        }
    }
    match changed {
        None => MutantResult {
            mutant: m.clone(),
            status: Status::Equivalent,
            killed_by: None,
            reason: Some(if same_objects == 0 {
                format!(
                    "renders byte for byte like the original for every judge ({})",
                    judges.len()
                )
            } else {
                format!(
                    "renders the same objects as the original for every judge ({}): only quoting, whitespace, comments, null fields or document order differ",
                    judges.len()
                )
            }),
            changes: vec![],
        },
        Some(changes) => MutantResult {
            mutant: m.clone(),
            status: Status::Survived,
            killed_by: None,
            reason: Some(format!(
                "the render changed for {differing} of {} judge(s), and every render check and expectation still passes",
                judges.len()
            )),
            changes,
        },
    }
}
