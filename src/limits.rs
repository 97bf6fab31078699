//! Per-address caps that protect the server from one noisy client: how many Socket.io handshakes
//! one address may have in progress at once.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

/// Counts the handshakes in progress per client address.
pub struct HandshakeGate {
    max: u32,
    in_progress: Mutex<HashMap<IpAddr, u32>>,
}

/// One handshake in progress; leaves the gate when dropped.
pub struct GatePass {
    gate: Arc<HandshakeGate>,
    ip: IpAddr,
}

impl HandshakeGate {
    /// At most `max` handshakes at once per address.
    pub fn new(max: u32) -> HandshakeGate {
        HandshakeGate {
            max,
            in_progress: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        self.in_progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pass for one more handshake from `ip`, or `None` when it has `max` in progress.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<GatePass> {
        let mut map = self.lock();
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(GatePass {
            gate: self.clone(),
            ip,
        })
    }
}

impl Drop for GatePass {
    fn drop(&mut self) {
        let mut map = self.gate.lock();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}
