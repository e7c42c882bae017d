//! The end of a scenario's live run: the empty-answer judgement after the first expectation,
//! and `finish` (timeline, evidence, removal of the release).

use super::*;

impl Session<'_> {
    /// Asks the backend the trigger's query under KEDA's tenant (and the seeded tenants when
    /// that answer is empty) and judges an empty answer as the scenario says.
    pub(super) async fn judge_empty_answer(
        &self,
        before: &[&Step],
        result: StepResult,
        outcome: &mut LiveOutcome,
    ) -> StepResult {
        if !self.asks_backend {
            return result;
        }
        let seeded: Vec<String> = before
            .iter()
            .filter_map(|s| match s {
                Step::Seed(seed) if !seed.series.is_empty() || !seed.per_ready_pod.is_empty() => {
                    Some(seed.tenant.clone())
                }
                _ => None,
            })
            .collect();
        let Some(finding) = tenancy::check(
            &self.target.query_client(),
            &self.backend.prometheus_url(),
            &self.target.trigger.config.query,
            &self.target.headers(),
            &seeded,
        )
        .await
        else {
            return result;
        };
        let judged = tenancy::judge(
            &finding,
            self.scenario.live.empty_answer,
            self.target.trigger.config.ignore_null_values,
        );
        outcome.empty_answer = Some(finding);
        match judged {
            Ok(Some(warning)) => {
                outcome.observations.push(warning);
                result
            }
            Ok(None) => result,
            Err(failure) => StepResult::Failed(match result {
                StepResult::Passed(line) => {
                    format!("{failure} (the workload did reach what that answer calls for: {line})")
                }
                other => format!("{failure}; {}", other.text()),
            }),
        }
    }

    /// Stops sampling and seeding, writes the timeline and (on failure) the evidence, records
    /// KEDA's final state and requests, and removes the release and namespace.
    pub(super) async fn finish(mut self, outcome: &mut LiveOutcome, out_dir: &Path) {
        if let Some(s) = self.sampler.take() {
            s.abort();
            // The state a step ended on (a failing look may have seen a change the sampler
            // had not sampled yet) closes the timeline, before the release is removed.
            if outcome.interrupted.is_none() {
                let http = self.target.query_client();
                let last = crate::live::sampler::sample_once(
                    &self.client,
                    &http,
                    &self.oracle_base,
                    &self.target,
                    &self.shared,
                    self.started,
                );
                let _ = tokio::time::timeout(std::time::Duration::from_secs(10), last).await;
            }
        }
        drop(self.seeder.take());
        let (markers, samples, latencies) = self
            .shared
            .lock()
            .map(|s| (s.markers.clone(), s.samples.clone(), s.latencies.clone()))
            .unwrap_or_default();
        outcome.timeline = samples;
        outcome.latencies = latencies;
        let (scenario, helm, render) = (self.scenario, self.helm, self.render);
        let dir = out_dir.join(format!("{}-helm{}", scenario.name, helm.number()));
        let verdict = if outcome.interrupted.is_some() {
            "INTERRUPTED"
        } else if outcome.reasons.is_empty() {
            "PASS"
        } else {
            "FAIL"
        };
        if private_dir_no_links(&dir).is_ok() {
            let _ = std::fs::write(dir.join("timeline.csv"), timeline::csv(&outcome.timeline));
            let _ = std::fs::write(
                dir.join("timeline.svg"),
                timeline::svg(
                    &outcome.timeline,
                    &markers,
                    &format!("{} [helm {}]: {verdict}", scenario.name, helm.number()),
                ),
            );
            if let Some(at) = &outcome.interrupted {
                let _ = std::fs::write(
                    dir.join("interrupted.txt"),
                    format!("interrupted (SIGINT/SIGTERM) during {at}; the evidence here is what had been gathered by then\n"),
                );
            }
            if !outcome.reasons.is_empty() {
                write_evidence(
                    self.env,
                    &self.backend,
                    &self.client,
                    &self.target,
                    &self.namespace,
                    render,
                    outcome,
                    &dir,
                )
                .await;
            }
            outcome.evidence_dir = Some(dir);
        }
        let redactor = crate::redact::for_renders(&[render]);
        if self.release.is_some() {
            outcome.final_state = redactor.apply(
                &observe::describe(
                    &self.client,
                    &self.namespace,
                    &self.target.scaled_object,
                    &self.target.hpa,
                )
                .await,
            );
        }
        if let Some(m) = &self.mock {
            outcome.requests = keda_requests(m).iter().map(redacted).collect();
        }
        // Interrupted: no `helm uninstall --wait`; deleting the namespace removes the release.
        if let Some(release) = self.release.take() {
            release
                .remove(&self.client, outcome.interrupted.is_none())
                .await;
        }
        if let (Some(m), Some(dir)) = (&self.mock, &outcome.evidence_dir) {
            let lines: Vec<String> = keda_requests(m)
                .iter()
                .map(|r| redactor.apply(&serde_json::to_string(&redacted(r)).unwrap_or_default()))
                .collect();
            let _ = std::fs::write(dir.join("requests.jsonl"), lines.join("\n") + "\n");
        }
    }
}
