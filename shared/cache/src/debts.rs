//! Invalidations owed: generation bumps this process could not deliver to Redis within a writer's
//! time budget. Other environments cannot be told (Redis is how they would be told), so until a
//! debt is delivered this process does what it can: its own readers of the key go to the loader
//! (trying to deliver first); a background task delivers it as soon as Redis answers, so nobody
//! serves the old value for the whole TTL; and a debt lapses once every value it concerns has
//! expired anyway (the TTL, plus the longest a load may take and still be written). The failures
//! are counted in Redis with the delivery.

use crate::link::{jittered, RedisLink};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The background task's first wait between tries, doubled after each up to the last.
const SETTLE_FIRST: Duration = Duration::from_millis(100);
const SETTLE_LAST: Duration = Duration::from_secs(1);

pub(crate) struct Debts {
    ledger: Mutex<Ledger>,
    /// Whether any generation is owed: readers look no further when it is not.
    any: AtomicBool,
    /// Whether the background task runs.
    settling: AtomicBool,
    horizon: Duration,
    /// The key of the failed-invalidations counter.
    counter: String,
}

#[derive(Default)]
struct Ledger {
    /// Generation key → the debt.
    owed: HashMap<String, Owed>,
    /// Failed invalidations not counted in Redis yet.
    uncounted: u64,
    made: u64,
}

struct Owed {
    until: Instant,
    /// Which failure this is: a delivery pays only the failures it was billed for.
    serial: u64,
}

/// What one delivery carries: an `INCR` per owed generation, and the failures to count.
pub(crate) struct Bill {
    owed: Vec<(String, u64)>,
    uncounted: u64,
}

impl Debts {
    pub(crate) fn new(horizon: Duration, counter: String) -> Self {
        Debts {
            ledger: Mutex::new(Ledger::default()),
            any: AtomicBool::new(false),
            settling: AtomicBool::new(false),
            horizon,
            counter,
        }
    }

    /// An invalidation of `generation` failed.
    pub(crate) fn owe(&self, generation: &str) {
        let mut ledger = self.ledger();
        ledger.made += 1;
        let serial = ledger.made;
        ledger.uncounted += 1;
        ledger.owed.insert(
            generation.to_owned(),
            Owed {
                until: Instant::now() + self.horizon,
                serial,
            },
        );
        self.any.store(true, Ordering::Release);
    }

    /// Whether an invalidation of `generation` is owed (and still matters).
    pub(crate) fn owes(&self, generation: &str) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let mut ledger = self.ledger();
        match ledger.owed.get(generation) {
            Some(owed) if owed.until > Instant::now() => true,
            Some(_) => {
                ledger.owed.remove(generation);
                self.any.store(!ledger.owed.is_empty(), Ordering::Release);
                false
            }
            None => false,
        }
    }

    /// Failed invalidations this process has not counted in Redis yet.
    pub(crate) fn uncounted(&self) -> u64 {
        self.ledger().uncounted
    }

    /// Everything owed, to deliver now; `None` when nothing is. The failures it counts are taken
    /// out of the ledger, so two deliveries never count one failure twice: give the bill back with
    /// [`Debts::unpaid`] when its delivery fails.
    pub(crate) fn bill(&self) -> Option<Bill> {
        let mut ledger = self.ledger();
        let now = Instant::now();
        ledger.owed.retain(|_, owed| owed.until > now);
        self.any.store(!ledger.owed.is_empty(), Ordering::Release);
        if ledger.owed.is_empty() && ledger.uncounted == 0 {
            return None;
        }
        let bill = Bill {
            owed: ledger
                .owed
                .iter()
                .map(|(generation, owed)| (generation.clone(), owed.serial))
                .collect(),
            uncounted: ledger.uncounted,
        };
        ledger.uncounted = 0;
        Some(bill)
    }

    /// Adds the bill's commands to `pipe`.
    pub(crate) fn charge(&self, bill: &Bill, pipe: &mut redis::Pipeline) {
        for (generation, _) in &bill.owed {
            pipe.cmd("INCR").arg(generation).ignore();
        }
        if bill.uncounted > 0 {
            pipe.cmd("INCRBY")
                .arg(&self.counter)
                .arg(bill.uncounted)
                .ignore();
        }
    }

    /// The bill was delivered: its debts are settled, unless the same generation was owed again
    /// since it was drawn up (that failure came after this delivery may have been sent).
    pub(crate) fn paid(&self, bill: Bill) {
        let mut ledger = self.ledger();
        for (generation, serial) in bill.owed {
            if ledger
                .owed
                .get(&generation)
                .is_some_and(|o| o.serial == serial)
            {
                ledger.owed.remove(&generation);
            }
        }
        self.any.store(!ledger.owed.is_empty(), Ordering::Release);
    }

    /// The bill could not be delivered: its failures are still to count.
    pub(crate) fn unpaid(&self, bill: Bill) {
        self.ledger().uncounted += bill.uncounted;
    }

    /// Starts the task that delivers what is owed as soon as Redis answers, unless it runs already.
    /// It stops when nothing is owed any more.
    pub(crate) fn settle_in_background(self: &Arc<Self>, link: &Arc<RedisLink>) {
        if self.settling.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.settling.store(false, Ordering::Release);
            return;
        };
        let (debts, link) = (self.clone(), link.clone());
        runtime.spawn(async move {
            let mut wait = SETTLE_FIRST;
            loop {
                tokio::time::sleep(jittered(wait)).await;
                wait = (wait * 2).min(SETTLE_LAST);
                if let Some(bill) = debts.bill() {
                    let mut pipe = redis::pipe();
                    debts.charge(&bill, &mut pipe);
                    match link.try_now(&pipe).await {
                        Ok(()) => debts.paid(bill),
                        Err(_) => debts.unpaid(bill),
                    }
                }
                if !debts.any.load(Ordering::Acquire) {
                    debts.settling.store(false, Ordering::Release);
                    // A debt owed between the check and the store would have no task: take over.
                    if !debts.any.load(Ordering::Acquire)
                        || debts.settling.swap(true, Ordering::AcqRel)
                    {
                        return;
                    }
                }
            }
        });
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("debt ledger poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debts() -> Debts {
        Debts::new(Duration::from_secs(60), "failed".to_owned())
    }

    #[test]
    fn a_debt_is_owed_until_a_delivery_billed_for_it_is_paid() {
        let debts = debts();
        assert!(!debts.owes("g1"));
        debts.owe("g1");
        assert!(debts.owes("g1") && !debts.owes("g2"));
        let bill = debts.bill().unwrap();
        assert_eq!(debts.uncounted(), 0, "billed");
        debts.unpaid(bill);
        assert!(debts.owes("g1"));
        assert_eq!(debts.uncounted(), 1, "still to count");
        let bill = debts.bill().unwrap();
        debts.paid(bill);
        assert!(!debts.owes("g1"));
        assert!(debts.bill().is_none());
    }

    #[test]
    fn a_failure_after_the_bill_was_drawn_up_stays_owed() {
        let debts = debts();
        debts.owe("g1");
        let bill = debts.bill().unwrap();
        debts.owe("g1");
        debts.paid(bill);
        assert!(debts.owes("g1"));
        assert_eq!(debts.uncounted(), 1);
    }

    #[test]
    fn a_debt_lapses_after_its_horizon() {
        let debts = Debts::new(Duration::ZERO, "failed".to_owned());
        debts.owe("g1");
        assert!(!debts.owes("g1"));
        let bill = debts.bill().unwrap();
        assert!(bill.owed.is_empty(), "nothing to invalidate");
        assert_eq!(bill.uncounted, 1, "but the failure is still counted");
    }

    #[test]
    fn a_bill_carries_an_incr_per_generation_and_the_count() {
        let debts = debts();
        debts.owe("g1");
        debts.owe("g2");
        let bill = debts.bill().unwrap();
        let mut pipe = redis::pipe();
        debts.charge(&bill, &mut pipe);
        let mut commands: Vec<Vec<u8>> = pipe
            .cmd_iter()
            .map(|cmd| cmd.get_packed_command())
            .collect();
        commands.sort();
        let expected = |args: &[&str]| {
            let mut cmd = redis::cmd(args[0]);
            for arg in &args[1..] {
                cmd.arg(*arg);
            }
            cmd.get_packed_command()
        };
        let mut wanted = vec![
            expected(&["INCR", "g1"]),
            expected(&["INCR", "g2"]),
            expected(&["INCRBY", "failed", "2"]),
        ];
        wanted.sort();
        assert_eq!(commands, wanted);
    }
}
