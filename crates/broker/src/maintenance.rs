//! The broker's background work, one round every `maintenance_interval` (250 ms by default):
//! interval and size flushes, retention, the log cleaner, and the size gauges.
//!
//! A task that fails keeps failing while its cause lasts (a full disk fails every flush's
//! checkpoint and every retention roll, a cleaner pass cannot write its rewrite), and a round
//! comes four times a second. So failures are reported through [`Failures`]:
//!
//! * every failure is counted in `veritas_broker_maintenance_failures_total{task}`;
//! * the first failure of a task on a partition is logged at once, with its error; while it
//!   keeps failing, one line a minute says how many more failed and the latest error; the first
//!   success after failures is logged too ("recovered");
//! * a failed compaction pass is not retried in the next round but after a backoff (30 s,
//!   doubling to 10 min), since each attempt rewrites segments; a success resets it. Kafka's
//!   cleaner likewise sets a failing partition aside ("uncleanable") instead of spinning on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::now_ms;
use crate::server::Shared;

/// How often a task that keeps failing is reported again.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// The first wait before a failed compaction pass is tried again; it doubles per failure.
const COMPACTION_BACKOFF: Duration = Duration::from_secs(30);
/// The longest wait between compaction attempts on a failing partition.
const MAX_COMPACTION_BACKOFF: Duration = Duration::from_secs(600);

/// A background task, as counted and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// An fsync (and recovery-point checkpoint) the flush policy asked for.
    Flush,
    /// Retention: deleting expired segments, rolling an expired active segment.
    Retention,
    /// A log cleaner pass.
    Compaction,
}

impl Task {
    /// The metric label.
    pub fn name(self) -> &'static str {
        match self {
            Task::Flush => "flush",
            Task::Retention => "retention",
            Task::Compaction => "compaction",
        }
    }
}

/// What to do with a task's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Say nothing.
    Quiet,
    /// The task started failing: log this failure.
    Failing,
    /// It is still failing: log the latest error and how many failed since the last report.
    StillFailing {
        /// Failures since the last report, this one included.
        since_last: u64,
    },
    /// It succeeded after `failures` failures.
    Recovered {
        /// Failures in the run that just ended.
        failures: u64,
    },
}

#[derive(Debug, Clone)]
struct Run {
    /// Failures in this run.
    failures: u64,
    /// Failures since the last report.
    unreported: u64,
    last_report: Instant,
    /// When the task may be tried again (compaction only).
    retry_at: Option<Instant>,
    backoff: Duration,
}

/// Failure runs per task and partition (the partition as `topic-index`). Pure bookkeeping: the
/// caller logs what [`Failures::failed`] and [`Failures::succeeded`] return.
#[derive(Debug, Default)]
pub struct Failures {
    runs: HashMap<(Task, String), Run>,
}

impl Failures {
    /// Records a failure of `task` on `partition` at `now`.
    pub fn failed(&mut self, task: Task, partition: &str, now: Instant) -> Report {
        match self.runs.get_mut(&(task, partition.to_owned())) {
            None => {
                let backoff = COMPACTION_BACKOFF;
                self.runs.insert(
                    (task, partition.to_owned()),
                    Run {
                        failures: 1,
                        unreported: 0,
                        last_report: now,
                        retry_at: (task == Task::Compaction).then(|| now + backoff),
                        backoff,
                    },
                );
                Report::Failing
            }
            Some(run) => {
                run.failures += 1;
                run.unreported += 1;
                if task == Task::Compaction {
                    run.backoff = (run.backoff * 2).min(MAX_COMPACTION_BACKOFF);
                    run.retry_at = Some(now + run.backoff);
                }
                if now.saturating_duration_since(run.last_report) >= REPORT_EVERY {
                    run.last_report = now;
                    Report::StillFailing {
                        since_last: std::mem::take(&mut run.unreported),
                    }
                } else {
                    Report::Quiet
                }
            }
        }
    }

    /// Records a success of `task` on `partition`.
    pub fn succeeded(&mut self, task: Task, partition: &str) -> Report {
        if self.runs.is_empty() {
            return Report::Quiet; // the common case: nothing is failing
        }
        match self.runs.remove(&(task, partition.to_owned())) {
            Some(run) => Report::Recovered {
                failures: run.failures,
            },
            None => Report::Quiet,
        }
    }

    /// Whether `task` may run on `partition` now (false while a failed compaction backs off).
    pub fn may_run(&self, task: Task, partition: &str, now: Instant) -> bool {
        self.runs.is_empty()
            || self
                .runs
                .get(&(task, partition.to_owned()))
                .and_then(|r| r.retry_at)
                .is_none_or(|at| now >= at)
    }

    /// Forgets partitions that no longer exist (deleted topics), keeping those in `live`.
    pub fn retain(&mut self, live: impl Fn(&str) -> bool) {
        self.runs.retain(|(_, p), _| live(p));
    }
}

/// Runs the rounds until the broker stops (the task is aborted at shutdown).
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.maintenance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = Failures::default();
    loop {
        tick.tick().await;
        let s = shared.clone();
        // A round that panicked loses its bookkeeping, nothing else.
        failures = tokio::task::spawn_blocking(move || {
            round(&s, &mut failures);
            failures
        })
        .await
        .unwrap_or_default();
    }
}

/// Logs and counts one outcome of `task` on `partition`.
fn note<E: std::fmt::Display>(
    shared: &Shared,
    failures: &mut Failures,
    task: Task,
    partition: &str,
    result: Result<(), E>,
) {
    let report = match &result {
        Ok(()) => failures.succeeded(task, partition),
        Err(_) => {
            shared
                .metrics
                .maintenance_failures
                .with_label_values(&[task.name()])
                .inc();
            failures.failed(task, partition, Instant::now())
        }
    };
    let error = result.err().map(|e| e.to_string()).unwrap_or_default();
    let task = task.name();
    match report {
        Report::Quiet => {}
        Report::Failing => tracing::error!(partition, task, %error, "background task failed"),
        Report::StillFailing { since_last } => tracing::error!(
            partition,
            task,
            %error,
            failures = since_last,
            "background task still failing"
        ),
        Report::Recovered { failures } => {
            tracing::info!(partition, task, failures, "background task recovered")
        }
    }
}

/// One round of background work: interval/size flushes, retention, compaction, gauges.
fn round(shared: &Shared, failures: &mut Failures) {
    let now = now_ms();
    let mut log_bytes = 0u64;
    let partitions = shared.cluster.all_partitions();
    let names: Vec<String> = partitions
        .iter()
        .map(|p| format!("{}-{}", p.topic, p.index))
        .collect();
    for (p, name) in partitions.iter().zip(&names) {
        if p.log.flush_needed() {
            note(shared, failures, Task::Flush, name, p.log.flush());
        }
        let retention = p.log.enforce_retention(now).map(|_| ());
        note(shared, failures, Task::Retention, name, retention);
        log_bytes += p.log.size_bytes();
    }
    compact(shared, failures, now);
    failures.retain(|name| names.iter().any(|n| n == name));
    shared.metrics.partitions.set(partitions.len() as i64);
    shared
        .metrics
        .topics
        .set(shared.cluster.topics().len() as i64);
    shared.metrics.log_bytes.set(log_bytes as i64);
}

/// The log cleaner: a compaction pass over every partition of a `cleanup.policy=compact`
/// topic whose not yet compacted share of closed segments reached `min.cleanable.dirty.ratio`,
/// or whose oldest such record is older than `max.compaction.lag.ms`; a partition whose last
/// pass failed waits out its backoff first. Internal topics are left to their owner (the group
/// coordinator rewrites its own log).
fn compact(shared: &Shared, failures: &mut Failures, now: i64) {
    for topic in shared.cluster.topics() {
        let config = topic.config();
        if topic.internal || !config.compacts() {
            continue;
        }
        let policy = config.compaction();
        for p in topic.partitions() {
            let name = format!("{}-{}", p.topic, p.index);
            if !failures.may_run(Task::Compaction, &name, Instant::now())
                || !policy.due(&p.log, now)
            {
                continue;
            }
            let result = p.log.compact(now, &policy.config).map(|out| {
                shared
                    .metrics
                    .compacted_records
                    .inc_by(out.records_removed + out.tombstones_removed);
            });
            note(shared, failures, Task::Compaction, &name, result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_task_is_reported_once_a_minute_and_on_recovery() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s);
        assert_eq!(f.succeeded(Task::Flush, "a-0"), Report::Quiet);
        assert_eq!(f.failed(Task::Flush, "a-0", at(0)), Report::Failing);
        // Four rounds a second for a minute: silent.
        for ms in (250..60_000).step_by(250) {
            assert_eq!(f.failed(Task::Flush, "a-0", at(ms)), Report::Quiet, "{ms}");
        }
        assert_eq!(
            f.failed(Task::Flush, "a-0", at(60_000)),
            Report::StillFailing { since_last: 240 }
        );
        assert_eq!(f.failed(Task::Flush, "a-0", at(60_250)), Report::Quiet);
        // Another task, another partition: their own runs.
        assert_eq!(
            f.failed(Task::Retention, "a-0", at(60_300)),
            Report::Failing
        );
        assert_eq!(f.failed(Task::Flush, "b-0", at(60_300)), Report::Failing);
        assert_eq!(
            f.succeeded(Task::Flush, "a-0"),
            Report::Recovered { failures: 242 }
        );
        assert_eq!(f.succeeded(Task::Flush, "a-0"), Report::Quiet);
        assert_eq!(f.failed(Task::Flush, "a-0", at(61_000)), Report::Failing);
        // Deleted partitions are forgotten.
        f.retain(|p| p == "b-0");
        assert_eq!(f.succeeded(Task::Retention, "a-0"), Report::Quiet);
        assert_eq!(
            f.succeeded(Task::Flush, "b-0"),
            Report::Recovered { failures: 1 }
        );
    }

    #[test]
    fn failed_compaction_backs_off_and_a_success_resets_it() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        assert!(f.may_run(Task::Compaction, "c-0", s(0)));
        f.failed(Task::Compaction, "c-0", s(0));
        assert!(!f.may_run(Task::Compaction, "c-0", s(29)));
        assert!(
            f.may_run(Task::Compaction, "c-1", s(1)),
            "other partitions run"
        );
        assert!(f.may_run(Task::Flush, "c-0", s(1)), "other tasks run");
        assert!(f.may_run(Task::Compaction, "c-0", s(30)));
        // Doubling: 60 s, 120 s, ... capped at 10 minutes.
        f.failed(Task::Compaction, "c-0", s(30));
        assert!(!f.may_run(Task::Compaction, "c-0", s(89)));
        assert!(f.may_run(Task::Compaction, "c-0", s(90)));
        let mut now = 90;
        for _ in 0..10 {
            f.failed(Task::Compaction, "c-0", s(now));
            now += 600;
        }
        assert!(!f.may_run(Task::Compaction, "c-0", s(now - 1)));
        assert!(f.may_run(Task::Compaction, "c-0", s(now)));
        assert!(matches!(
            f.succeeded(Task::Compaction, "c-0"),
            Report::Recovered { failures: 12 }
        ));
        assert!(f.may_run(Task::Compaction, "c-0", s(now)));
        f.failed(Task::Compaction, "c-0", s(now));
        assert!(
            f.may_run(Task::Compaction, "c-0", s(now + 30)),
            "reset to 30 s"
        );
    }
}
