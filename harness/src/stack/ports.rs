//! Loopback ports for the host processes of a run (control plane, KEDA, Cortex), claimed
//! machine-wide so that harness processes started side by side never hand the same port to
//! two components.
//!
//! A port is chosen free and released for the component to bind, so there is a window between
//! the check and the component's bind. Two things close it:
//! - ports come from outside the kernel's ephemeral range (`ip_local_port_range`), so no
//!   `bind(port 0)` and no outgoing connection (whose source port the kernel picks from that
//!   range) can take one in the window;
//! - each port is claimed by binding the abstract Unix socket `keda-conformance/port/<n>`
//!   (Linux; one name per network namespace, like the port itself) and holding it while the
//!   component runs. Another harness process skips claimed ports, so the check-then-bind of
//!   one run never races another's. The kernel drops the claim when its holder dies, even by
//!   SIGKILL, so a killed run leaves no stale claim and no file behind.
//!
//! Before, Cortex and KEDA took ports from `bind(127.0.0.1:0)` and released them: a port from
//! the ephemeral range that a concurrent run's next outgoing connection or `bind(0)` could be
//! given before the component bound it ("address already in use").

use std::net::{Ipv4Addr, TcpListener};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

/// A claimed port: no other harness process on this machine picks it while this lives.
#[derive(Debug)]
pub struct PortClaim {
    port: u16,
    _claim: UnixListener,
}

impl PortClaim {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// The abstract socket name that claims `port`.
fn claim_name(port: u16) -> String {
    format!("keda-conformance/port/{port}")
}

/// Claims `port` if no harness process holds it and it is free on 127.0.0.1 now.
pub fn try_claim(port: u16) -> Option<PortClaim> {
    let addr = SocketAddr::from_abstract_name(claim_name(port).as_bytes()).ok()?;
    let claim = UnixListener::bind_addr(&addr).ok()?;
    // Free right now (the claim keeps other harness processes away until the component binds).
    drop(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).ok()?);
    Some(PortClaim {
        port,
        _claim: claim,
    })
}

/// Claims `n` distinct ports outside the ephemeral range, chosen at random (see the module
/// doc). Hold the claims for as long as the components that use the ports run.
///
/// # Errors
/// [`std::io::ErrorKind::AddrInUse`] when `n` ports cannot be claimed after many tries.
pub fn claim(n: usize) -> std::io::Result<Vec<PortClaim>> {
    let (low, high) = non_ephemeral_range();
    let span = u64::from(high - low) + 1;
    let mut claims: Vec<PortClaim> = Vec::with_capacity(n);
    let mut tries = 0;
    while claims.len() < n {
        tries += 1;
        if tries > 100 * n.max(5) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "no {n} free ports in {low}-{high} after {} tries",
                    tries - 1
                ),
            ));
        }
        let port = low + (random() % span) as u16;
        // A port claimed twice here would fail the abstract bind, so they stay distinct.
        if let Some(c) = try_claim(port) {
            claims.push(c);
        }
    }
    Ok(claims)
}

/// A random number from the standard library's per-process random hash keys.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}

/// The largest port range outside `/proc/sys/net/ipv4/ip_local_port_range` (above 10000).
pub fn non_ephemeral_range() -> (u16, u16) {
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().filter_map(|n| n.parse::<u32>().ok());
            Some((it.next()?, it.next()?))
        })
        .unwrap_or((32768, 60999));
    pick_range(lo, hi)
}

fn pick_range(ephemeral_low: u32, ephemeral_high: u32) -> (u16, u16) {
    let below = (10_000u32, ephemeral_low.saturating_sub(1));
    let above = (ephemeral_high + 1, 65_535u32);
    let size = |(a, b): (u32, u32)| b.saturating_sub(a);
    let best = if size(below) >= size(above) {
        below
    } else {
        above
    };
    if size(best) < 1000 {
        // The ephemeral range covers nearly everything: take what it leaves anyway.
        (10_000, 65_535)
    } else {
        (best.0 as u16, best.1 as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_avoid_the_ephemeral_range() {
        assert_eq!(pick_range(32768, 60999), (10_000, 32767));
        assert_eq!(pick_range(10000, 40000), (40001, 65535));
        assert_eq!(pick_range(1024, 65535), (10_000, 65535));
    }

    #[test]
    fn a_claimed_port_is_refused_to_everyone_else_until_released() {
        let claims = claim(5).unwrap();
        let (lo, hi) = non_ephemeral_range();
        let mut ports: Vec<u16> = claims.iter().map(PortClaim::port).collect();
        for p in &ports {
            assert!((lo..=hi).contains(p), "{p} not in {lo}-{hi}");
            // The abstract name is machine-wide: a second claim (from this or any other
            // process) is refused while the first lives.
            assert!(try_claim(*p).is_none(), "port {p} claimed twice");
        }
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 5, "claimed ports are distinct");
        let first = claims[0].port();
        drop(claims);
        assert!(
            try_claim(first).is_some(),
            "released when the claim is dropped"
        );
    }

    #[test]
    fn a_port_bound_by_someone_else_is_not_claimed() {
        let (lo, hi) = non_ephemeral_range();
        let taken = (lo..=hi)
            .find_map(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).ok())
            .unwrap();
        let port = taken.local_addr().unwrap().port();
        assert!(try_claim(port).is_none());
    }
}
