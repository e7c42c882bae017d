//! The oracle: the replica count the HPA controller will settle on for an external metric,
//! with Kubernetes' arithmetic (tolerance, AverageValue vs Value, clamping to the KEDA bounds),
//! including the feedback of queries whose value depends on the replica count.

use crate::keda::prometheus::MetricType;
use serde::Serialize;

/// What the HPA KEDA creates is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HpaModel {
    /// KEDA's threshold (the HPA target).
    pub target: f64,
    /// AverageValue (default) or Value.
    pub metric_type: MetricType,
    /// ScaledObject minReplicaCount (the HPA's minimum is max(1, this)).
    pub min_replicas: u32,
    /// ScaledObject maxReplicaCount.
    pub max_replicas: u32,
    /// The controller-manager's tolerance (default 0.1).
    pub tolerance: f64,
}

impl HpaModel {
    /// The HPA's minimum: KEDA gives the HPA max(1, minReplicaCount); 0 is KEDA's own business.
    pub fn hpa_min(&self) -> u32 {
        self.min_replicas.max(1)
    }

    /// The replica count one HPA sync computes from `metric` (the value the external
    /// metrics API serves) with `current` replicas of which `ready` are Ready.
    pub fn desired(&self, metric: f64, current: u32, ready: u32) -> u32 {
        let current_f = f64::from(current.max(1));
        let raw = match self.metric_type {
            MetricType::AverageValue => {
                let ratio = metric / (self.target * current_f);
                if (1.0 - ratio).abs() <= self.tolerance {
                    current
                } else {
                    (metric / self.target).ceil() as u32
                }
            }
            MetricType::Value => {
                let ratio = metric / self.target;
                if (1.0 - ratio).abs() <= self.tolerance {
                    current
                } else {
                    (ratio * f64::from(ready.max(1))).ceil() as u32
                }
            }
        };
        raw.clamp(self.hpa_min(), self.max_replicas.max(self.hpa_min()))
    }

    /// Where repeated syncs lead when the metric depends on the replica count (`metric_at(r)`),
    /// starting from `start` replicas: a stable count, or the cycle it oscillates through.
    pub fn settle(&self, start: u32, metric_at: impl Fn(u32) -> f64) -> Settlement {
        let mut seen = vec![start];
        let mut r = start;
        for _ in 0..64 {
            let next = self.desired(metric_at(r), r, r);
            if next == r {
                return Settlement::Stable(r);
            }
            if let Some(pos) = seen.iter().position(|&x| x == next) {
                return Settlement::Cycle(seen[pos..].to_vec());
            }
            seen.push(next);
            r = next;
        }
        Settlement::Cycle(seen)
    }
}

/// Where the HPA ends up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Settlement {
    /// It settles on this replica count.
    Stable(u32),
    /// It oscillates through these counts (a configuration that flaps).
    Cycle(Vec<u32>),
}

/// How long the HPA may hold back a change in one direction, read from the behavior a
/// ScaledObject gives its HPA (`spec.advanced.horizontalPodAutoscalerConfig.behavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DirectionDelay {
    /// The stabilization window (`None`: not set, the controller's default applies).
    pub stabilization: Option<std::time::Duration>,
    /// An upper bound on the time the scaling policies take to cover the whole replica range
    /// (zero without policies: the defaults act within a sync or two).
    pub policies: std::time::Duration,
    /// `selectPolicy: Disabled`: the HPA never scales in this direction.
    pub disabled: bool,
}

/// The delay the behavior imposes on `direction` (`scaleUp` or `scaleDown`) over a range of
/// `span` replicas. Conservative: a Percent policy is counted as one pod per period, so the
/// bound may exceed the real time but never falls short of it.
pub fn direction_delay(behavior: &serde_json::Value, direction: &str, span: u32) -> DirectionDelay {
    let rules = &behavior[direction];
    let secs = |v: &serde_json::Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let stabilization =
        secs(&rules["stabilizationWindowSeconds"]).map(std::time::Duration::from_secs);
    let select = rules["selectPolicy"].as_str().unwrap_or("Max");
    let per_policy: Vec<u64> = rules["policies"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    let period = secs(&p["periodSeconds"])?.max(1);
                    let pods = match p["type"].as_str() {
                        Some("Pods") => secs(&p["value"]).unwrap_or(1).max(1),
                        _ => 1,
                    };
                    Some(u64::from(span).div_ceil(pods) * period)
                })
                .collect()
        })
        .unwrap_or_default();
    // Max (the default) lets the most generous policy act: the fastest bound holds; Min lets
    // the most restrictive one act: the slowest bound holds.
    let policies = match select {
        "Min" => per_policy.iter().max(),
        _ => per_policy.iter().min(),
    }
    .copied()
    .unwrap_or(0);
    DirectionDelay {
        stabilization,
        policies: std::time::Duration::from_secs(policies),
        disabled: select == "Disabled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behavior_delays_come_from_the_scaled_object() {
        let b = serde_json::json!({
            "scaleDown": {"stabilizationWindowSeconds": 300, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
            "scaleUp": {"selectPolicy": "Disabled"}
        });
        let down = direction_delay(&b, "scaleDown", 4);
        assert_eq!(
            down.stabilization,
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(down.policies, std::time::Duration::from_secs(240));
        assert!(!down.disabled);
        assert!(direction_delay(&b, "scaleUp", 4).disabled);
        let none = direction_delay(&serde_json::Value::Null, "scaleUp", 4);
        assert_eq!(none.stabilization, None);
        assert_eq!(none.policies, std::time::Duration::ZERO);
    }

    fn model(metric_type: MetricType) -> HpaModel {
        HpaModel {
            target: 250.0,
            metric_type,
            min_replicas: 1,
            max_replicas: 5,
            tolerance: 0.1,
        }
    }

    #[test]
    fn average_value_scales_to_ceil_of_total_over_target() {
        let m = model(MetricType::AverageValue);
        assert_eq!(m.desired(1000.0, 1, 1), 4);
        assert_eq!(m.desired(1001.0, 1, 1), 5);
    }

    #[test]
    fn within_tolerance_keeps_the_current_count() {
        let m = model(MetricType::AverageValue);
        // 3 replicas, target 250: 780 is a ratio of 1.04, inside 10%.
        assert_eq!(m.desired(780.0, 3, 3), 3);
    }

    #[test]
    fn clamps_to_bounds_and_floors_at_one() {
        let m = model(MetricType::AverageValue);
        assert_eq!(m.desired(100_000.0, 1, 1), 5);
        let zero_min = HpaModel {
            min_replicas: 0,
            ..m
        };
        assert_eq!(zero_min.desired(0.0, 3, 3), 1);
    }

    #[test]
    fn value_metric_type_multiplies_by_ready_pods() {
        let m = model(MetricType::Value);
        assert_eq!(m.desired(500.0, 2, 2), 4);
    }

    #[test]
    fn a_query_divided_by_pod_count_settles_at_the_fixed_point_or_cycles() {
        let m = HpaModel {
            max_replicas: 10,
            ..model(MetricType::AverageValue)
        };
        // backlog 2000 divided by the replica count, then AverageValue divides again: from 1
        // replica the metric 2000 calls for 8; at 8 it reads 250 and calls for 1: a cycle.
        assert_eq!(
            m.settle(1, |r| 2000.0 / f64::from(r)),
            Settlement::Cycle(vec![1, 8])
        );
        // A metric that grows with the count can still settle: 600 at 1 replica calls for 3;
        // at 3 it reads 800, a ratio of 1.07 to 3 x 250, inside the tolerance.
        assert_eq!(
            m.settle(1, |r| 500.0 + 100.0 * f64::from(r)),
            Settlement::Stable(3)
        );
        // A query that does not depend on the count settles at ceil(total / target).
        assert_eq!(m.settle(1, |_| 2000.0), Settlement::Stable(8));
    }
}
