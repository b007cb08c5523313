//! One timer for every group: a min-heap of `(deadline, group)` wake-ups served by the
//! coordinator's background task, which sleeps until the earliest one (never polls).
//!
//! Each group keeps its own deadlines (sessions, join and sync phases, pending member ids) and
//! queues only its *earliest* one, remembering it in [`GroupState::armed`]; a heartbeat, which
//! only pushes a deadline later, queues nothing. When a wake-up fires, the group handles
//! whatever is due and queues its next deadline. Stale entries (a group deleted, a deadline
//! moved later) fire harmlessly: handling a group with nothing due does nothing.
//!
//! [`GroupState::armed`]: super::state::GroupState

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The wake-up queue.
#[derive(Default)]
pub struct Timers {
    heap: Mutex<BinaryHeap<Reverse<(Instant, String)>>>,
    changed: Notify,
}

impl Timers {
    /// Queues a wake-up for `group` at `at`.
    pub fn schedule(&self, at: Instant, group: &str) {
        let earliest = {
            let mut heap = self.heap.lock();
            let earliest = heap.peek().is_none_or(|Reverse((t, _))| at < *t);
            heap.push(Reverse((at, group.to_owned())));
            earliest
        };
        if earliest {
            // Stores a permit if the task is not waiting yet: the wake-up cannot be lost.
            self.changed.notify_one();
        }
    }

    /// The earliest queued wake-up.
    pub fn next(&self) -> Option<Instant> {
        self.heap.lock().peek().map(|Reverse((t, _))| *t)
    }

    /// Removes and returns every wake-up due at `now`, earliest first.
    pub fn pop_due(&self, now: Instant) -> Vec<(Instant, String)> {
        let mut heap = self.heap.lock();
        let mut due = Vec::new();
        while heap.peek().is_some_and(|Reverse((t, _))| *t <= now) {
            if let Some(Reverse(entry)) = heap.pop() {
                due.push(entry);
            }
        }
        due
    }

    /// Completes when an earlier wake-up than the current earliest has been queued.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Number of queued wake-ups.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_due_entries_in_order() {
        let t = Timers::default();
        let now = Instant::now();
        t.schedule(now + Duration::from_secs(5), "late");
        t.schedule(now + Duration::from_secs(1), "b");
        t.schedule(now, "a");
        assert_eq!(t.next(), Some(now));
        let due = t.pop_due(now + Duration::from_secs(1));
        let names: Vec<_> = due.iter().map(|(_, g)| g.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(t.len(), 1);
    }

    #[tokio::test]
    async fn an_earlier_wakeup_is_signalled_even_before_anyone_waits() {
        let t = Timers::default();
        t.schedule(Instant::now(), "g");
        // The permit stored by `schedule` completes this at once.
        tokio::time::timeout(Duration::from_secs(10), t.changed())
            .await
            .expect("notified");
    }
}
