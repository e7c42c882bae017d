//! The names of what the kind provider creates: clusters (and their Docker networks) named
//! `kc-<owner pid>-<random>`, so `cluster gc` can tell whether their owner still lives, and
//! the label on every other container it starts.

/// Every kind cluster (and its Docker network) of ours is named `kc-<owner pid>-<random>`.
pub const CLUSTER_PREFIX: &str = "kc-";
/// The label on every container this provider starts besides kind's nodes (value: the
/// cluster's name).
pub const LABEL: &str = "io.keda-conformance.cluster";

/// A fresh cluster name: `kc-<pid>-<6 hex digits>` (unique per run, and `cluster gc` can
/// tell from it whether its owner still lives).
pub fn cluster_name() -> String {
    let mut bytes = [0u8; 3];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !random {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        bytes = [(nanos >> 16) as u8, (nanos >> 8) as u8, nanos as u8];
    }
    format!(
        "{CLUSTER_PREFIX}{}-{:02x}{:02x}{:02x}",
        std::process::id(),
        bytes[0],
        bytes[1],
        bytes[2]
    )
}

/// The owner pid encoded in a cluster name of ours.
pub fn owner_of(cluster: &str) -> Option<u32> {
    cluster
        .strip_prefix(CLUSTER_PREFIX)?
        .split_once('-')?
        .0
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_owner() {
        let a = cluster_name();
        let b = cluster_name();
        assert_ne!(a, b);
        assert_eq!(owner_of(&a), Some(std::process::id()));
        assert!(a.len() <= 32, "{a}");
        assert_eq!(owner_of("kind"), None);
        assert_eq!(owner_of("kc-abc-12"), None);
    }
}
