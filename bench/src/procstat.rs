//! Process figures from /proc (procfs): CPU time, resident memory; and the file-descriptor limit.

use procfs::process::{all_processes, Process};
use procfs::{ticks_per_second, CurrentSI, KernelStats};
use std::io;

fn process(pid: u32) -> io::Result<Process> {
    Process::new(pid as i32).map_err(io::Error::other)
}

/// utime + stime of `pid` in seconds.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = process(pid)?.stat().map_err(io::Error::other)?;
    Ok((stat.utime + stat.stime) as f64 / ticks_per_second() as f64)
}

/// The bench process's own CPU time, to show the load generator is not the bottleneck.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// utime + stime of every `postgres` process (postmaster and backends), in seconds. Backends that
/// exit take their time with them: meaningful across a window in which sessions stay open.
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(all) = all_processes() else {
        return 0.0;
    };
    let ticks: u64 = all
        .filter_map(|p| p.ok()?.stat().ok())
        .filter(|s| s.comm == "postgres")
        .map(|s| s.utime + s.stime)
        .sum();
    ticks as f64 / ticks_per_second() as f64
}

/// The children of `pid` (nginx's worker).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(all) = all_processes() else {
        return Vec::new();
    };
    all.filter_map(|p| p.ok()?.stat().ok())
        .filter(|s| s.ppid == pid as i32)
        .map(|s| s.pid as u32)
        .collect()
}

/// Busy and total CPU time of the whole machine so far, in ticks.
pub fn machine_ticks() -> (u64, u64) {
    let Ok(stats) = KernelStats::current() else {
        return (0, 0);
    };
    let t = stats.total;
    let idle = t.idle + t.iowait.unwrap_or(0);
    let total = t.user
        + t.nice
        + t.system
        + t.idle
        + t.iowait.unwrap_or(0)
        + t.irq.unwrap_or(0)
        + t.softirq.unwrap_or(0)
        + t.steal.unwrap_or(0);
    (total - idle, total)
}

/// Peak resident set size (VmHWM) in KiB.
pub fn peak_rss_kib(pid: u32) -> io::Result<u64> {
    let status = process(pid)?.status().map_err(io::Error::other)?;
    status.vmhwm.ok_or_else(|| io::Error::other("no VmHWM"))
}

/// Current resident set size (VmRSS) in KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = process(pid)?.status().map_err(io::Error::other)?;
    status.vmrss.ok_or_else(|| io::Error::other("no VmRSS"))
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
    use super::*;

    #[test]
    fn our_own_process_can_be_measured() {
        assert!(cpu_seconds(std::process::id()).is_ok());
        assert!(peak_rss_kib(std::process::id()).unwrap() > 0);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        let (busy, total) = machine_ticks();
        assert!(total > 0 && busy <= total);
    }
}
