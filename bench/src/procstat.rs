//! Process figures from /proc (procfs): CPU time, resident memory; and the file-descriptor limit.

use procfs::process::{all_processes, Process, Stat};
use procfs::{ticks_per_second, CurrentSI, KernelStats};
use std::io;

fn process(pid: u32) -> io::Result<Process> {
    Process::new(pid as i32).map_err(io::Error::other)
}

fn seconds(ticks: u64) -> f64 {
    ticks as f64 / ticks_per_second() as f64
}

/// utime + stime of `pid` in seconds (0 when it is gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    process(pid)
        .and_then(|p| p.stat().map_err(io::Error::other))
        .map_or(0.0, |s| seconds(s.utime + s.stime))
}

fn all_stats() -> Vec<Stat> {
    all_processes().map_or(Vec::new(), |all| {
        all.filter_map(|p| p.ok()?.stat().ok()).collect()
    })
}

/// utime + stime of every `postgres` process in seconds. Backends that exit take their time with
/// them: meaningful across a window in which sessions stay open.
pub fn postgres_cpu_seconds() -> f64 {
    seconds(
        all_stats()
            .iter()
            .filter(|s| s.comm == "postgres")
            .map(|s| s.utime + s.stime)
            .sum(),
    )
}

/// The children of `pid` (nginx's worker).
pub fn children(pid: u32) -> Vec<u32> {
    all_stats()
        .iter()
        .filter(|s| s.ppid == pid as i32)
        .map(|s| s.pid as u32)
        .collect()
}

/// Busy and total CPU time of the whole machine so far, in ticks.
pub fn machine_ticks() -> (u64, u64) {
    let Ok(KernelStats { total: t, .. }) = KernelStats::current() else {
        return (0, 0);
    };
    let idle = t.idle + t.iowait.unwrap_or(0);
    let busy = t.user + t.nice + t.system + t.irq.unwrap_or(0) + t.softirq.unwrap_or(0);
    let busy = busy + t.steal.unwrap_or(0);
    (busy, busy + idle)
}

/// Peak (VmHWM) and current (VmRSS) resident set size in KiB; 0 when unknown.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    process(pid)
        .and_then(|p| p.status().map_err(io::Error::other))
        .map_or((0, 0), |s| (s.vmhwm.unwrap_or(0), s.vmrss.unwrap_or(0)))
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0, own processes), so a later VmHWM is the peak
/// of one scenario rather than of the whole run.
pub fn reset_peak_rss(pid: u32) -> io::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

/// Raises the soft RLIMIT_NOFILE towards `wanted` (capped by the hard limit) and returns the new
/// soft limit; the servers started afterwards inherit it.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on 64-bit Linux but not everywhere
pub fn raise_nofile(wanted: u64) -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit/setrlimit to use.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let target = wanted.min(limit.rlim_max as u64);
    if (limit.rlim_cur as u64) < target {
        limit.rlim_cur = target as libc::rlim_t;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn our_own_process_can_be_measured() {
        let me = std::process::id();
        assert!(super::rss_kib(me).0 > 0);
        let (busy, total) = super::machine_ticks();
        assert!(total > 0 && busy <= total);
    }
}
