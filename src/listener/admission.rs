//! Who gets a connection: a cap on open connections from one client address, a cap on open
//! connections overall (derived from the open-file limit), and a small reserve past it that only
//! answers `/health` and `/ready`. Every admitted connection holds a [`Permit`] for as long as its
//! TCP stream lives (also after it became a WebSocket), so the counts are the real open sockets.
//!
//! At the overall cap, a newcomer first evicts the oldest connection that is idle HTTP (no
//! request in flight, not a WebSocket): a flood of silent connections then only ever pushes out
//! its own kind, never a socket or a request being answered, and never a probe.

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv6Addr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
};

use tokio::sync::Notify;

/// Connections accepted past [`Admission::max_connections`] that may still ask for `/health` or
/// `/ready` (one request each, then closed). Past this too, a connection is closed at once.
pub const PROBE_RESERVE: usize = 16;
/// Evicted connections that may still hold their descriptors while their tasks close them. A
/// burst of newcomers at the cap evicts faster than busy tasks close; past this many open beyond
/// the cap and the probe reserve, a newcomer waits ([`Verdict::Closing`]) until some have closed,
/// so that the descriptors in use stay under `max_connections + PROBE_RESERVE + MAX_EVICTING`.
const MAX_EVICTING: usize = 32;

/// Share of the open-file limit (soft `RLIMIT_NOFILE`) that client connections may use when
/// `MAX_CONNECTIONS` is 0; the rest stays free for the database pool, Redis, files and probes.
const AUTO_SHARE_PERCENT: u64 = 90;

/// Connection caps, as configured.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections overall; 0 picks 90% of the open-file limit.
    pub max_connections: u32,
    /// Open connections from one address (an IPv6 client: its /64); 0 means no cap.
    pub max_per_address: u32,
    /// Time a client has to send a complete request head, and most time a keep-alive connection
    /// waits for its next request.
    pub header_read_timeout: std::time::Duration,
    /// A connection that is not a WebSocket is closed after this long without a byte either way.
    pub idle_timeout: std::time::Duration,
}

/// What a new connection may do.
pub enum Verdict {
    /// Served normally.
    Serve(Permit),
    /// Past the overall cap, inside the probe reserve: `/health` and `/ready` only, then closed.
    ProbesOnly(Permit),
    /// Refused: too many connections from its address.
    PerAddress,
    /// Refused: the server is at capacity, probe reserve included.
    Capacity,
    /// Not yet: evicted connections are still closing; ask again in a moment.
    Closing,
}

/// Counters and gauges of the listener, for `/metrics`.
#[derive(Default)]
pub struct ConnectionStats {
    /// TCP connections open now (HTTP and WebSocket).
    pub open: AtomicI64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Refused by the per-address cap.
    pub refused_per_address: AtomicU64,
    /// Refused at capacity (overall cap and probe reserve full).
    pub refused_capacity: AtomicU64,
    /// Closed at once because `accept` ran out of file descriptors.
    pub refused_fd_exhausted: AtomicU64,
    /// Served from the probe reserve (past the overall cap).
    pub probes_only: AtomicU64,
    /// Idle HTTP connections closed at the cap to make room for a newcomer.
    pub evicted: AtomicU64,
    /// Closed because the request head did not arrive in time.
    pub header_timeouts: AtomicU64,
    /// Closed because they stayed silent (never became a WebSocket).
    pub idle_timeouts: AtomicU64,
    /// The resolved overall cap (gauge).
    pub limit: AtomicI64,
}

impl ConnectionStats {
    /// Appends the listener's series to a Prometheus exposition.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP nexus_http_connections_open TCP connections open now (HTTP and WebSocket).\n\
             # TYPE nexus_http_connections_open gauge\nnexus_http_connections_open {}",
            self.open.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP nexus_http_connections_limit Open connections allowed before only /health and /ready are served.\n\
             # TYPE nexus_http_connections_limit gauge\nnexus_http_connections_limit {}",
            self.limit.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP nexus_http_connections_accepted_total TCP connections accepted.\n\
             # TYPE nexus_http_connections_accepted_total counter\nnexus_http_connections_accepted_total {}",
            self.accepted.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP nexus_http_connections_refused_total Connections closed at accept, by reason.\n\
             # TYPE nexus_http_connections_refused_total counter"
        );
        for (reason, v) in [
            ("per_address", &self.refused_per_address),
            ("capacity", &self.refused_capacity),
            ("fd_exhausted", &self.refused_fd_exhausted),
        ] {
            let _ = writeln!(
                out,
                "nexus_http_connections_refused_total{{reason=\"{reason}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP nexus_http_connections_probe_only_total Connections past the limit served for /health and /ready only.\n\
             # TYPE nexus_http_connections_probe_only_total counter\nnexus_http_connections_probe_only_total {}",
            self.probes_only.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP nexus_http_connections_evicted_total Idle HTTP connections closed at the limit to admit a newcomer.\n\
             # TYPE nexus_http_connections_evicted_total counter\nnexus_http_connections_evicted_total {}",
            self.evicted.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP nexus_http_connections_timed_out_total Connections closed by a timeout, by which.\n\
             # TYPE nexus_http_connections_timed_out_total counter\n\
             nexus_http_connections_timed_out_total{{reason=\"header\"}} {}\n\
             nexus_http_connections_timed_out_total{{reason=\"idle\"}} {}",
            self.header_timeouts.load(Relaxed),
            self.idle_timeouts.load(Relaxed)
        );
    }
}

/// The key a per-address count is kept under: an IPv4 address, or an IPv6 address's /64 (one
/// client is usually given a whole /64, so counting single IPv6 addresses would be no cap).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// What the accept loop and a connection's task share about that connection.
#[derive(Default)]
pub struct ConnFlags {
    /// Requests being answered now.
    pub in_flight: AtomicUsize,
    /// hyper serves it as HTTP (false once it ended, or became a WebSocket).
    pub http: AtomicBool,
    /// A request head has arrived on it: a client that talks, not one that holds a descriptor.
    pub served: AtomicBool,
    evicted: AtomicBool,
    /// Notified when the connection is to close to make room.
    pub evict: Notify,
}

impl ConnFlags {
    fn evictable(&self) -> bool {
        self.http.load(Relaxed) && self.in_flight.load(Relaxed) == 0 && !self.evicted.load(Relaxed)
    }
}

/// Decides admissions and keeps the counts.
pub struct Admission {
    max_connections: usize,
    max_per_address: u32,
    per_address: Mutex<HashMap<IpAddr, u32>>,
    /// Every open connection by admission order (oldest first), for eviction.
    open: Mutex<BTreeMap<u64, Arc<ConnFlags>>>,
    /// Evicted connections whose task has not closed them yet: they count as gone.
    evicting: AtomicI64,
    next_id: AtomicU64,
    stats: Arc<ConnectionStats>,
}

impl Admission {
    /// The caps of `limits`, with 0 resolved against the open-file limit (`nofile`, when known).
    pub fn new(
        limits: &ConnectionLimits,
        nofile: Option<u64>,
        stats: Arc<ConnectionStats>,
    ) -> Admission {
        let max_connections = resolve_max_connections(limits.max_connections, nofile);
        stats
            .limit
            .store(i64::try_from(max_connections).unwrap_or(i64::MAX), Relaxed);
        Admission {
            max_connections,
            max_per_address: limits.max_per_address,
            per_address: Mutex::new(HashMap::new()),
            open: Mutex::new(BTreeMap::new()),
            evicting: AtomicI64::new(0),
            next_id: AtomicU64::new(0),
            stats,
        }
    }

    fn open_map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ConnFlags>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks an idle HTTP connection to close; `false` when there is none. The oldest one that
    /// never sent a request goes first (a flood holds those), then the oldest kept-alive one
    /// (a client's pool may be about to reuse it, and would see it close under its request).
    fn evict_one(&self) -> bool {
        let map = self.open_map();
        let mut kept_alive = None;
        let silent = map.values().filter(|f| f.evictable()).find(|f| {
            let served = f.served.load(Relaxed);
            if served && kept_alive.is_none() {
                kept_alive = Some(Arc::clone(f));
            }
            !served
        });
        match silent.cloned().or(kept_alive) {
            Some(flags) => {
                flags.evicted.store(true, Relaxed);
                self.evicting.fetch_add(1, Relaxed);
                flags.evict.notify_one();
                self.stats.evicted.fetch_add(1, Relaxed);
                true
            }
            None => false,
        }
    }

    /// The overall cap in force.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        self.per_address.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits (or not) one more connection from `ip`.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Verdict {
        let key = address_key(ip);
        let holding = self.stats.open.load(Relaxed);
        let open = usize::try_from(holding - self.evicting.load(Relaxed)).unwrap_or(0);
        let holding = usize::try_from(holding).unwrap_or(0);
        let reserve = self.max_connections.saturating_add(PROBE_RESERVE);
        if open < reserve && holding >= reserve.saturating_add(MAX_EVICTING) {
            return Verdict::Closing;
        }
        if open >= reserve {
            self.stats.refused_capacity.fetch_add(1, Relaxed);
            return Verdict::Capacity;
        }
        {
            let mut map = self.lock();
            let n = map.entry(key).or_insert(0);
            if self.max_per_address > 0 && *n >= self.max_per_address {
                self.stats.refused_per_address.fetch_add(1, Relaxed);
                return Verdict::PerAddress;
            }
            *n += 1;
        }
        self.stats.open.fetch_add(1, Relaxed);
        self.stats.accepted.fetch_add(1, Relaxed);
        // Room is made before the newcomer is listed, so it never evicts itself.
        let probes_only = open >= self.max_connections && !self.evict_one();
        let id = self.next_id.fetch_add(1, Relaxed);
        let flags = Arc::new(ConnFlags::default());
        flags.http.store(true, Relaxed);
        self.open_map().insert(id, flags.clone());
        let permit = Permit {
            admission: self.clone(),
            key,
            id,
            flags,
        };
        if probes_only {
            self.stats.probes_only.fetch_add(1, Relaxed);
            Verdict::ProbesOnly(permit)
        } else {
            Verdict::Serve(permit)
        }
    }
}

/// The cap `configured` stands for: itself, or (0) 90% of the open-file limit; without a known
/// limit, no cap.
fn resolve_max_connections(configured: u32, nofile: Option<u64>) -> usize {
    if configured > 0 {
        return configured as usize;
    }
    match nofile {
        Some(limit) => {
            usize::try_from(limit.saturating_mul(AUTO_SHARE_PERCENT) / 100).unwrap_or(usize::MAX)
        }
        None => usize::MAX / 2,
    }
}

/// One open connection; leaves the counts when dropped (when its stream closes).
pub struct Permit {
    admission: Arc<Admission>,
    key: IpAddr,
    id: u64,
    flags: Arc<ConnFlags>,
}

impl Permit {
    /// The flags the connection's task keeps up to date.
    pub fn flags(&self) -> Arc<ConnFlags> {
        self.flags.clone()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.open_map().remove(&self.id);
        if self.flags.evicted.load(Relaxed) {
            self.admission.evicting.fetch_sub(1, Relaxed);
        }
        self.admission.stats.open.fetch_sub(1, Relaxed);
        let mut map = self.admission.lock();
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// The soft open-file limit of this process, from `/proc/self/limits` (Linux); `None` elsewhere
/// or when it is unlimited.
pub fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&text)
}

fn parse_open_file_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max: u32, per_address: u32) -> Arc<Admission> {
        let limits = ConnectionLimits {
            max_connections: max,
            max_per_address: per_address,
            header_read_timeout: std::time::Duration::from_secs(1),
            idle_timeout: std::time::Duration::from_secs(1),
        };
        Arc::new(Admission::new(&limits, None, Arc::default()))
    }

    #[test]
    fn the_open_file_limit_is_read_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max cpu time              unlimited            unlimited            seconds\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_file_limit(text), Some(1024));
        assert_eq!(
            parse_open_file_limit("Max open files  unlimited unlimited files"),
            None
        );
        assert_eq!(resolve_max_connections(0, Some(1024)), 921);
        assert_eq!(resolve_max_connections(50, Some(1024)), 50);
    }

    #[test]
    fn the_per_address_cap_counts_open_connections_and_frees_on_drop() {
        let a = admission(100, 2);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let first = a.admit(ip);
        let second = a.admit(ip);
        assert!(matches!(a.admit(ip), Verdict::PerAddress));
        assert!(matches!(
            a.admit("10.0.0.2".parse().unwrap()),
            Verdict::Serve(_)
        ));
        drop(first);
        assert!(matches!(a.admit(ip), Verdict::Serve(_)));
        drop(second);
    }

    #[test]
    fn one_ipv6_client_is_its_slash_64() {
        let a = admission(100, 1);
        let _held = a.admit("2001:db8:1:2::1".parse().unwrap());
        assert!(matches!(
            a.admit("2001:db8:1:2::ffff".parse().unwrap()),
            Verdict::PerAddress
        ));
        assert!(matches!(
            a.admit("2001:db8:1:3::1".parse().unwrap()),
            Verdict::Serve(_)
        ));
    }

    fn flags(v: &Verdict) -> Arc<ConnFlags> {
        match v {
            Verdict::Serve(p) | Verdict::ProbesOnly(p) => p.flags(),
            _ => panic!("not admitted"),
        }
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let a = admission(2, 0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let busy = a.admit(ip);
        flags(&busy).in_flight.store(1, Relaxed);
        let idle = a.admit(ip);
        let newcomer = a.admit(ip);
        assert!(
            matches!(newcomer, Verdict::Serve(_)),
            "admitted by evicting"
        );
        assert!(flags(&idle).evicted.load(Relaxed), "the idle one goes");
        assert!(!flags(&busy).evicted.load(Relaxed), "the busy one stays");
        drop(idle);
        // The busy one and a WebSocket (no longer HTTP) are never evicted.
        flags(&newcomer).http.store(false, Relaxed);
        assert!(matches!(a.admit(ip), Verdict::ProbesOnly(_)));
    }

    #[test]
    fn connections_that_never_sent_a_request_are_evicted_before_kept_alive_ones() {
        let a = admission(3, 0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let kept_alive = a.admit(ip);
        flags(&kept_alive).served.store(true, Relaxed);
        let silent = a.admit(ip);
        let half_sent = a.admit(ip);
        let n1 = a.admit(ip);
        assert!(
            flags(&silent).evicted.load(Relaxed),
            "the oldest silent one goes first"
        );
        assert!(!flags(&kept_alive).evicted.load(Relaxed));
        let n2 = a.admit(ip);
        assert!(
            flags(&half_sent).evicted.load(Relaxed),
            "then the next silent one"
        );
        assert!(!flags(&kept_alive).evicted.load(Relaxed));
        drop((silent, half_sent));
        // Served newcomers: only kept-alive connections are left, the oldest goes.
        flags(&n1).served.store(true, Relaxed);
        flags(&n2).served.store(true, Relaxed);
        let _n3 = a.admit(ip);
        assert!(
            flags(&kept_alive).evicted.load(Relaxed),
            "then the oldest kept-alive one"
        );
        assert!(!flags(&n1).evicted.load(Relaxed));
    }

    #[test]
    fn evictions_not_yet_closed_are_bounded() {
        let a = admission(64, 0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        // 64 idle connections at the cap, whose tasks never get to close them.
        let idle: Vec<Verdict> = (0..64).map(|_| a.admit(ip)).collect();
        let newcomers: Vec<Verdict> = (0..128).map(|_| a.admit(ip)).collect();
        // Each newcomer evicts an idle one, until the evicted ones still open (64 + PROBE_RESERVE +
        // MAX_EVICTING descriptors in all) hold the rest back until they have closed.
        let admitted = newcomers
            .iter()
            .filter(|v| matches!(v, Verdict::Serve(_)))
            .count();
        assert_eq!(admitted, PROBE_RESERVE + MAX_EVICTING);
        assert!(
            newcomers[admitted..]
                .iter()
                .all(|v| matches!(v, Verdict::Closing))
        );
        let evicted = idle
            .iter()
            .filter(|v| flags(v).evicted.load(Relaxed))
            .count();
        assert_eq!(evicted, admitted);
        // Once the evicted connections have closed, newcomers are served again.
        drop(idle);
        assert!(matches!(a.admit(ip), Verdict::Serve(_)));
    }

    #[test]
    fn past_the_cap_only_probes_then_nothing() {
        let a = admission(1, 0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut held = vec![a.admit(ip)];
        assert!(matches!(held[0], Verdict::Serve(_)));
        flags(&held[0]).in_flight.store(1, Relaxed);
        for _ in 0..PROBE_RESERVE {
            let v = a.admit(ip);
            assert!(matches!(v, Verdict::ProbesOnly(_)));
            flags(&v).in_flight.store(1, Relaxed);
            held.push(v);
        }
        assert!(matches!(a.admit(ip), Verdict::Capacity));
        held.clear();
        assert!(matches!(a.admit(ip), Verdict::Serve(_)));
    }
}
