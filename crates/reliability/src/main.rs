//! `veritas-reliability`: the torture programs, for CI (bounded) and soak runs (`--cycles N`).
//!
//! ```text
//! veritas-reliability broker   --cycles 20 [--seed S] [--report FILE]   # kill -9 the broker
//! veritas-reliability torn     --cases 400 [--from DATA_DIR]             # torn-write recovery
//! veritas-reliability detector --kills 5                                 # kill -9 the detector
//! veritas-reliability fuzz-seeds --out fuzz/corpus                       # regenerate seeds
//! ```
//!
//! Each prints a summary and a closing `N passed, N failed` line, writes its JSON report to
//! `--report` (or prints it), and exits non-zero when a promise was broken.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use veritas_reliability::{broker_torture, detector_crash, process, seeds, torn};

#[derive(Debug, Parser)]
#[command(
    name = "veritas-reliability",
    about = "Crash, torn-write and fuzz harness for Veritas"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Kill the real broker with SIGKILL under load, restart, check every acknowledged record.
    Broker {
        /// Kill/restart cycles (CI: 20; soak: as many as you like).
        #[arg(long, default_value_t = 20)]
        cycles: u32,
        /// Seed of the kill moments and payloads.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Records per second per producer.
        #[arg(long, default_value_t = 1500)]
        rate: u32,
        /// The veritas binary (default: beside this one).
        #[arg(long)]
        veritas: Option<PathBuf>,
        /// Keep the data directory and broker log here.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Also damage copies of the final data directory (torn writes on real broker data):
        /// this many cases per partition.
        #[arg(long, default_value_t = 0)]
        torn_cases: u64,
        /// Also start the real broker on this many damaged copies of the final data directory
        /// and read them back (CRC-checked by librdkafka).
        #[arg(long, default_value_t = 0)]
        broker_torn_cases: u32,
        /// Write the JSON report here too.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Torn writes: damaged copies of log directories recovered and read back.
    Torn {
        /// Damaged copies.
        #[arg(long, default_value_t = 400)]
        cases: u64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Damage copies of this broker data directory instead of generated logs.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Write the JSON report here too.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Kill `veritas detect` with SIGKILL mid-stream; compare with an uninterrupted detector.
    Detector {
        /// SIGKILLs.
        #[arg(long, default_value_t = 5)]
        kills: u32,
        /// Seed of the stream and the kill moments.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Cardholders in the stream (events ≈ customers × days × 2).
        #[arg(long, default_value_t = 1000)]
        customers: u32,
        /// Days of history.
        #[arg(long, default_value_t = 10)]
        days: u32,
        /// Events per second fed to the input topic.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// The veritas binary (default: beside this one).
        #[arg(long)]
        veritas: Option<PathBuf>,
        /// Keep data and logs here.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Write the JSON report here too.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Writes the seed corpora of the fuzz targets (`fuzz/corpus/<target>/seed-*`).
    FuzzSeeds {
        /// The corpus root.
        #[arg(long, default_value = "fuzz/corpus")]
        out: PathBuf,
        /// The sarama request vectors of the legacy crate.
        #[arg(long, default_value = "crates/legacy/tests/data/sarama-1.22.1")]
        legacy_data: PathBuf,
        /// Also take record batches (every codec) from this broker data directory.
        #[arg(long)]
        from_data: Option<PathBuf>,
    },
}

/// Prints `summary` and the closing `N passed, N failed` line; the JSON report goes to `path`
/// (or to stdout when there is none). Fails when a promise was broken.
fn emit(
    report: &impl serde::Serialize,
    summary: &str,
    path: Option<&PathBuf>,
    ok: bool,
) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    match path {
        Some(p) => {
            std::fs::write(p, &json).with_context(|| format!("writing {}", p.display()))?;
            println!("{summary}");
            println!("report: {}", p.display());
        }
        None => println!("{json}\n{summary}"),
    }
    println!("{} passed, {} failed", u32::from(ok), u32::from(!ok));
    if !ok {
        if path.is_some() {
            eprintln!("{json}");
        }
        anyhow::bail!("a reliability promise was broken: see the report");
    }
    Ok(())
}

fn records_line(name: &str, v: &veritas_reliability::checker::RecordVerdict) -> String {
    format!(
        "{name}: {} acknowledged records checked ({} read back, {} expired by retention, {} unacknowledged present): lost {}, duplicated {}, reordered {}, misplaced/offset reused {}, malformed {}",
        v.acked,
        v.read,
        v.expired,
        v.unacked_present,
        v.lost.len(),
        v.duplicated.len(),
        v.reordered.len(),
        v.misplaced.len(),
        v.malformed.len()
    )
}

fn compacted_line(v: &veritas_reliability::checker::CompactedVerdict) -> String {
    format!(
        "compacted topic: {} acknowledged records over {} keys, {} read back after compaction ({} removed, must be > 0): latest of a key lost {}, misplaced {}, malformed {}",
        v.acked,
        v.keys,
        v.read,
        v.removed(),
        v.latest_lost.len(),
        v.misplaced.len(),
        v.malformed.len()
    )
}

fn torn_line(t: &torn::TornReport) -> String {
    format!(
        "torn writes: {} damaged copies {:?}: {} of {} batches served ({} intact before the damage); invalid batches served {}, not a prefix {}, intact batches lost {}, failures {}, CRC-less epoch flips served {}",
        t.cases,
        t.by_kind,
        t.batches_served,
        t.batches_original,
        t.batches_intact,
        t.invalid_served,
        t.not_a_prefix.len(),
        t.lost_intact.len(),
        t.failures.len(),
        t.epoch_flips_served
    )
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Broker {
            cycles,
            seed,
            rate,
            veritas,
            work_dir,
            torn_cases,
            broker_torn_cases,
            report,
        } => {
            let tmp = tempfile::tempdir()?;
            let work = work_dir.unwrap_or_else(|| tmp.path().to_path_buf());
            let cfg = broker_torture::TortureConfig {
                veritas: process::find_veritas(veritas.as_deref())?,
                cycles,
                seed,
                rate,
                work_dir: Some(work.clone()),
                ..Default::default()
            };
            let (r, original) = broker_torture::run_keeping_records(&cfg)?;
            let mut ok = r.ok();
            let torn = if torn_cases > 0 {
                let t = torn::check_dir(&work.join("data"), torn_cases, seed)?;
                ok &= t.ok();
                Some(t)
            } else {
                None
            };
            let mut summary = format!(
                "broker torture: {} kill -9 cycles in {:.0} s, {} records sent, {} consumed by the group\n{}\n{}\n{}\ncommitted offsets: {} commits acknowledged, {} observations, {} moved backwards\nhigh watermark below an acknowledged offset after a restart: {}\nkills during produce {}, after segment rolls {}, within 1.5 s of a rebalance {}, with a commit in flight {}, while retention advanced {}, while compaction was writing {}\nproducer errors {} (must be 0); all client-side errors: {:?}",
                r.cycles,
                r.seconds,
                r.sent,
                r.consumed,
                records_line("torture topic", &r.records),
                records_line("retention topic", &r.churn),
                compacted_line(&r.compacted),
                r.commits.acked,
                r.commits.observations,
                r.commits.backwards.len(),
                r.watermark_violations.len(),
                r.kills_during_produce,
                r.kills_after_rolls,
                r.kills_during_rebalance,
                r.kills_during_commit,
                r.kills_during_retention,
                r.kills_during_compaction,
                r.producer_errors(),
                r.delivery_errors
            );
            if let Some(t) = &torn {
                summary.push_str(&format!("\non the final data directory: {}", torn_line(t)));
            }
            let whole = if broker_torn_cases > 0 {
                let w = broker_torture::torn_broker_copies(
                    &cfg,
                    &work.join("data"),
                    &original,
                    broker_torn_cases,
                    seed,
                )?;
                ok &= w.ok();
                summary.push_str(&format!(
                    "\nreal broker on {} damaged copies of the data directory: {} of {} records served (librdkafka CRC checks on), not a prefix {}, failures {}",
                    w.cases,
                    w.records_served,
                    w.records_original,
                    w.not_a_prefix.len(),
                    w.failures.len()
                ));
                Some(w)
            } else {
                None
            };
            emit(
                &serde_json::json!({ "broker": r, "torn_broker_data": torn, "torn_broker_process": whole }),
                &summary,
                report.as_ref(),
                ok,
            )
        }
        Cmd::Torn {
            cases,
            seed,
            from,
            report,
        } => {
            let r = match from {
                Some(dir) => torn::check_dir(&dir, cases, seed)?,
                None => torn::run(cases, seed)?,
            };
            let ok = r.ok();
            emit(&r, &torn_line(&r), report.as_ref(), ok)
        }
        Cmd::Detector {
            kills,
            seed,
            customers,
            days,
            rate,
            veritas,
            work_dir,
            report,
        } => {
            let cfg = detector_crash::DetectorCrashConfig {
                veritas: process::find_veritas(veritas.as_deref())?,
                kills,
                seed,
                customers,
                days,
                rate,
                work_dir,
                ..Default::default()
            };
            let r = detector_crash::run(&cfg)?;
            let ok = r.ok();
            let summary = format!(
                "detector kill -9: {} kills, {} events + {} invalid, {} decisions for {} events ({} duplicates after crashes), missing {}, scores differing from the uninterrupted run {}, dead letters {} for {} invalid events (missing {}), {} partitions and {} merchant tables restored from checkpoints, {:.0} s",
                r.kills,
                r.events,
                r.invalid_events,
                r.decisions,
                r.decided,
                r.duplicates,
                r.missing_count,
                r.mismatched_count,
                r.dead_letters,
                r.invalid_events,
                r.missing_dead_letters,
                r.partitions_restored,
                r.tables_restored,
                r.seconds
            );
            emit(&r, &summary, report.as_ref(), ok)
        }
        Cmd::FuzzSeeds {
            out,
            legacy_data,
            from_data,
        } => {
            let mut all = seeds::all(&legacy_data)?;
            if let Some(d) = from_data {
                all.extend(seeds::from_data_dir(&d, 2)?);
            }
            let mut counts = std::collections::BTreeMap::new();
            for (target, name, bytes) in &all {
                let dir = out.join(target);
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
                *counts.entry(*target).or_insert(0) += 1;
            }
            println!("wrote seeds to {}: {counts:?}", out.display());
            Ok(())
        }
    }
}
