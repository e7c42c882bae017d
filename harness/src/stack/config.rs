//! What a local control plane is asked to be: node count and size, HPA timing, deadlines.

use std::time::Duration;

/// Timing flags of kube-controller-manager's horizontal-pod-autoscaler controller.
///
/// The defaults are chosen so scaling tests converge in seconds rather than minutes, while
/// staying stable on a loaded 2-core machine:
///
/// | flag | default here | upstream default |
/// | --- | --- | --- |
/// | `--horizontal-pod-autoscaler-sync-period` | 5 s | 15 s |
/// | `--horizontal-pod-autoscaler-downscale-stabilization` | 15 s | 5 min |
/// | `--horizontal-pod-autoscaler-tolerance` | 0.1 | 0.1 |
///
/// A 5 s sync period still leaves KEDA's metrics adapter several queries per polling interval;
/// 15 s of downscale stabilization is three sync periods, enough to absorb one noisy sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HpaTiming {
    /// How often the HPA controller reconciles every HPA.
    pub sync_period: Duration,
    /// How far back the controller looks for the highest recommendation before scaling down.
    pub downscale_stabilization: Duration,
    /// The relative metric change below which the controller does not scale.
    pub tolerance: f64,
}

impl Default for HpaTiming {
    fn default() -> Self {
        Self {
            sync_period: Duration::from_secs(5),
            downscale_stabilization: Duration::from_secs(15),
            tolerance: 0.1,
        }
    }
}

/// Allocatable (and capacity) of each fake node, as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeResources {
    /// CPU, e.g. `16`.
    pub cpu: String,
    /// Memory, e.g. `64Gi`.
    pub memory: String,
    /// Maximum pods, e.g. `110`.
    pub pods: String,
}

impl Default for NodeResources {
    fn default() -> Self {
        Self {
            cpu: "16".into(),
            memory: "64Gi".into(),
            pods: "110".into(),
        }
    }
}

/// Everything that shapes one local control plane.
#[derive(Debug, Clone, PartialEq)]
pub struct StackConfig {
    /// Number of fake (kwok) nodes; charts with hard hostname anti-affinity need at least as
    /// many nodes as their largest replica count.
    pub nodes: u32,
    /// Size of each fake node.
    pub node_resources: NodeResources,
    /// HPA timing of the controller manager.
    pub hpa: HpaTiming,
    /// Deadline for each readiness condition (etcd healthy, apiserver ready, nodes Ready,
    /// leases held). Generous by default because a loaded 2-core CI machine is slow.
    pub ready_timeout: Duration,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self {
            nodes: 1,
            node_resources: NodeResources::default(),
            hpa: HpaTiming::default(),
            ready_timeout: Duration::from_secs(120),
        }
    }
}

/// Parses a duration written as a number and a unit: `500ms`, `5s`, `2m`, `1h` (a bare number
/// is seconds), or a sum of them such as `1m30s`, as Go does.
///
/// # Errors
/// A message naming the text and the accepted units.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration; write e.g. 500ms, 5s, 2m or 1m30s");
    let t = text.trim();
    if t.is_empty() || t.starts_with('-') {
        return Err(bad());
    }
    // A bare number is seconds; everything else is read the way KEDA and Kubernetes (Go's
    // `time.ParseDuration`) read it, by the one parser the scenarios use too.
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    crate::keda::goparse::parse_go_duration(t).map_err(|_| bad())
}

/// Formats a duration the way Go's flag parser reads it: whole milliseconds, e.g. `5000ms`
/// becomes `5s` and `1500ms` stays `1500ms`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_sums_and_bare_seconds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn rejects_unknown_units_and_empty_text() {
        for bad in ["", "5x", "s", "ms5", "-1"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("not a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn formats_for_go_flags() {
        assert_eq!(go_duration(Duration::from_secs(5)), "5s");
        assert_eq!(go_duration(Duration::from_secs(300)), "300s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn defaults_are_the_documented_fast_hpa_timing() {
        let h = HpaTiming::default();
        assert_eq!(h.sync_period, Duration::from_secs(5));
        assert_eq!(h.downscale_stabilization, Duration::from_secs(15));
        assert!((h.tolerance - 0.1).abs() < f64::EPSILON);
    }
}
