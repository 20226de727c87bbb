//! The booking comparison's cores: PostgreSQL alone on one half of the machine's CPUs, and
//! everything that asks it (pgbench, the service, this load generator) on the other half.
//!
//! Deployed, PostgreSQL has its instance to itself: the functions run on Lambda and the clients
//! on their phones. On one shared machine the service's HTTP server and the load generator (about
//! 0.18 ms of CPU a booking) took the CPU PostgreSQL needed, while pgbench's own client costs
//! about 0.02 ms, so the ratio measured how cheap an HTTP stack is next to a C client rather than
//! what the booking costs the database. With the split both sides meet the same PostgreSQL on the
//! same cores, and the ratio is what each booking costs it (decision 32).
//!
//! [`Split::apply`] pins every `postgres` process (new backends are forked by the postmaster and
//! inherit its CPUs) and the given client processes, every thread of each; dropping the [`Split`]
//! gives each its CPUs back, also when the run fails or is interrupted. A bench killed with
//! SIGKILL leaves them pinned: `taskset -a -p -c 0-<n> <pid>` or a PostgreSQL restart undoes it.

use crate::procs::postgres_pids;
use procfs::process::Process;
use std::fmt;

/// A set of CPUs (`cpu_set_t`).
#[derive(Clone, Copy)]
struct Cpus(libc::cpu_set_t);

impl Cpus {
    fn of(cpus: &[usize]) -> Cpus {
        // SAFETY: an all-zero cpu_set_t is the empty set (what CPU_ZERO writes).
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &cpu in cpus {
            // SAFETY: CPU_SET on a valid set; `cpu` comes from CPU_ISSET below, so it is in range.
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
        Cpus(set)
    }

    /// The CPUs thread or process `tid` may run on.
    fn get(tid: i32) -> std::io::Result<Cpus> {
        // SAFETY: as in `of`.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `set` is a valid, writable cpu_set_t of `size` bytes.
        if unsafe { libc::sched_getaffinity(tid, size, &mut set) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Cpus(set))
    }

    fn set(&self, tid: i32) -> std::io::Result<()> {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `self.0` is a valid cpu_set_t of `size` bytes.
        if unsafe { libc::sched_setaffinity(tid, size, &self.0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn list(&self) -> Vec<usize> {
        let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: CPU_ISSET reads a valid set at an index below its size.
        (0..max)
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &self.0) })
            .collect()
    }
}

/// "0", "0-3", "1,3".
fn label(cpus: &[usize]) -> String {
    match (cpus.first(), cpus.last()) {
        (Some(first), Some(last)) if last - first + 1 == cpus.len() && first != last => {
            format!("{first}-{last}")
        }
        _ => cpus
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The threads of process `pid` (itself among them).
fn threads(pid: i32) -> Vec<i32> {
    let tasks = Process::new(pid).and_then(|p| p.tasks());
    let tids = tasks.map(|t| t.filter_map(|t| Some(t.ok()?.tid)).collect());
    tids.unwrap_or_else(|_| vec![pid])
}

/// PostgreSQL and the clients pinned apart until dropped.
pub struct Split {
    postgres: Vec<usize>,
    clients: Vec<usize>,
    /// Each process pinned, with the CPUs it had (a client's threads all get its CPUs back,
    /// those started during the split too).
    pinned: Vec<(Pinned, i32, Cpus)>,
    /// What a `postgres` process forked during the split gets back (the postmaster's CPUs).
    postgres_before: Cpus,
}

#[derive(Clone, Copy, PartialEq)]
enum Pinned {
    Postgres,
    Client,
}

impl Split {
    /// Pins PostgreSQL to the first half of the CPUs this process may use, and `clients` (with
    /// this process: pgbench and the servers it starts inherit it) to the rest. `Err` says why
    /// it cannot (one CPU, PostgreSQL not on this machine, no permission); nothing stays pinned.
    pub fn apply(clients: &[u32]) -> Result<Split, String> {
        let own = Cpus::get(0).map_err(|e| format!("sched_getaffinity: {e}"))?;
        let cpus = own.list();
        if cpus.len() < 2 {
            return Err("this process may use one CPU only".into());
        }
        let postgres = postgres_pids();
        if postgres.is_empty() {
            return Err("no postgres process on this machine".into());
        }
        let half = cpus.len() / 2;
        let mut split = Split {
            postgres: cpus[..half].to_vec(),
            clients: cpus[half..].to_vec(),
            pinned: Vec::new(),
            postgres_before: Cpus::get(postgres[0]).unwrap_or(own),
        };
        let clients = clients
            .iter()
            .map(|&p| p as i32)
            .chain([std::process::id() as i32]);
        let targets = postgres.iter().map(|&p| (Pinned::Postgres, p));
        for (kind, pid) in targets.chain(clients.map(|p| (Pinned::Client, p))) {
            let Ok(before) = Cpus::get(pid) else {
                continue; // gone meanwhile (a backend that disconnected)
            };
            // `split` is dropped on an error, giving back what it pinned so far.
            split.pinned.push((kind, pid, before));
            split.pin(kind, pid)?;
        }
        Ok(split)
    }

    /// Every thread of `pid` to its side's CPUs.
    fn pin(&self, kind: Pinned, pid: i32) -> Result<(), String> {
        let cpus = match kind {
            Pinned::Postgres => Cpus::of(&self.postgres),
            Pinned::Client => Cpus::of(&self.clients),
        };
        for tid in threads(pid) {
            match cpus.set(tid) {
                Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                    return Err(format!("sched_setaffinity({tid}): {e}"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PostgreSQL on CPU {}; pgbench, the service and the load generator on CPU {}",
            label(&self.postgres),
            label(&self.clients)
        )
    }
}

impl Drop for Split {
    fn drop(&mut self) {
        for (_, pid, before) in &self.pinned {
            for tid in threads(*pid) {
                let _ = before.set(tid);
            }
        }
        // Backends forked during the split inherited the postmaster's pinned CPUs.
        let known = |pid: &i32| {
            self.pinned
                .iter()
                .any(|(k, p, _)| *k == Pinned::Postgres && p == pid)
        };
        for pid in postgres_pids().into_iter().filter(|p| !known(p)) {
            let _ = self.postgres_before.set(pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_read_as_taskset_writes_them() {
        assert_eq!(label(&[0]), "0");
        assert_eq!(label(&[2, 3, 4, 5]), "2-5");
        assert_eq!(label(&[1, 3]), "1,3");
    }

    #[test]
    fn a_cpu_set_holds_exactly_the_cpus_put_in() {
        assert_eq!(Cpus::of(&[0, 5, 63]).list(), vec![0, 5, 63]);
        assert!(Cpus::of(&[]).list().is_empty());
    }
}
