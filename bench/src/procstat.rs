//! Server resource use read from `/proc`: resident memory (VmRSS) and CPU time (utime + stime).

/// A sample summed over the observed processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Sum of VmRSS, bytes.
    pub rss_bytes: u64,
    /// Sum of user + system CPU time, seconds.
    pub cpu_secs: f64,
    /// Processes that could not be read (exited).
    pub missing: usize,
}

/// Reads every pid; an unreadable one is counted in `missing`.
pub fn sample(pids: &[u32]) -> Sample {
    let ticks = clock_ticks();
    let mut s = Sample::default();
    for &pid in pids {
        match (rss_bytes(pid), cpu_ticks(pid)) {
            (Some(rss), Some(cpu)) => {
                s.rss_bytes += rss;
                s.cpu_secs += cpu as f64 / ticks;
            }
            _ => s.missing += 1,
        }
    }
    s
}

/// Per-process RSS in bytes, in the order given.
pub fn rss_each(pids: &[u32]) -> Vec<u64> {
    pids.iter().map(|&p| rss_bytes(p).unwrap_or(0)).collect()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields are counted after its closing parenthesis.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is index 0 here, so utime (14) and stime (15) are 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_readable() {
        let s = sample(&[std::process::id()]);
        assert_eq!(s.missing, 0);
        assert!(s.rss_bytes > 0);
        assert_eq!(sample(&[u32::MAX]).missing, 1);
    }
}
