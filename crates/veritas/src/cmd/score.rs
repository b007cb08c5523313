//! `veritas score`: score a file of events offline with the detector's engine.
//!
//! Events are processed in input order (as a stream would deliver them), one decision per
//! input line, written as JSON Lines in the same order. The per-event latency recorded in
//! each decision is the wall time of `Detector::process` for that event.

use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Instant, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use veritas_detect::shared::MerchantSource;
use veritas_detect::{Detector, Verdict};
use veritas_events::{decode_event, RecordContext};

use super::detect::load_model;
use super::rows::BadRows;
use super::train::{load_config, progress_bar};

/// Flags of `veritas score`. Every flag can also be set through its `VERITAS_*` variable.
#[derive(Debug, Clone, Args)]
pub struct ScoreArgs {
    /// Events to score (`.jsonl`: canonical events, labelled or not, or the tutorial format).
    #[arg(long, env = "VERITAS_SCORE_INPUT")]
    pub input: PathBuf,
    /// Model file from `veritas train`; rules only when absent.
    #[arg(long, env = "VERITAS_MODEL")]
    pub model: Option<PathBuf>,
    /// Rules / detector configuration (TOML); the built-in default when absent.
    #[arg(long, env = "VERITAS_RULES")]
    pub rules: Option<PathBuf>,
    /// Where to write the decisions (`.jsonl`).
    #[arg(long, env = "VERITAS_DECISIONS_OUT")]
    pub out: PathBuf,
    /// Event time (ms since the epoch) of the first tutorial-format event, which carries no
    /// time of its own; line N gets this + N ms. Default: the input file's modification time.
    #[arg(long, env = "VERITAS_TUTORIAL_START_MS")]
    pub tutorial_start_ms: Option<i64>,
    /// Give up when more than this share of the input's lines is not a valid event (the
    /// others are reported and skipped: they get no decision).
    #[arg(long, env = "VERITAS_MAX_BAD_FRACTION", default_value_t = super::rows::DEFAULT_MAX_BAD_FRACTION)]
    pub max_bad_fraction: f64,
}

/// Run `veritas score`.
pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    let config = load_config(args.rules.as_deref())?;
    let model = args
        .model
        .as_deref()
        .map(|p| load_model(p, &config))
        .transpose()?;
    if model.is_none() {
        tracing::warn!("no --model given: scoring with rules only");
    }
    // With shared merchant state, the file is one stream read in order.
    let mut merchants = MerchantSource::for_config(&config.engine);
    let mut detector = Detector::new(config, model);
    let file =
        fs::File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
    let meta = file.metadata()?;
    let base_ms = match args.tutorial_start_ms {
        Some(ms) => ms,
        None => meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0)),
    };
    let out =
        fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let reader = BufReader::with_capacity(1 << 16, file);
    let pb = progress_bar(meta.len(), "scoring");
    let topic = args.input.display().to_string();
    let mut counts = [0u64; 3];
    let mut busy = std::time::Duration::ZERO;
    let mut n = 0u64;
    let mut bad_rows = BadRows::new(args.max_bad_fraction);
    let started = Instant::now();
    for (i, line) in reader.split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading {}", args.input.display()))?;
        pb.inc(line.len() as u64 + 1);
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        let offset = i as i64;
        let ctx = RecordContext::new(&topic, 0, offset, base_ms.saturating_add(offset));
        let tx = match decode_event(trimmed, &ctx) {
            Ok(tx) => tx,
            Err(e) => {
                bad_rows.skip(&args.input, i as u64 + 1, e)?;
                continue;
            }
        };
        let t0 = Instant::now();
        let mut decision = merchants.decide(&mut detector, &tx);
        let took = t0.elapsed();
        busy += took;
        decision.latency_us = Some(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        counts[match decision.decision {
            Verdict::Approve => 0,
            Verdict::Review => 1,
            Verdict::Decline => 2,
        }] += 1;
        serde_json::to_writer(&mut out, &decision)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    let skipped = bad_rows.finish(n)?;
    out.flush()?;
    out.into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
        .with_context(|| format!("syncing {}", args.out.display()))?;
    pb.finish_and_clear();
    let stats = detector.engine().stats();
    let mem = detector.engine().memory();
    println!(
        "scored {n} events in {:.1} s ({:.0} events/s end to end, {:.0} events/s in the detector)",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64().max(1e-9),
        n as f64 / busy.as_secs_f64().max(1e-9)
    );
    println!(
        "APPROVE {}  REVIEW {}  DECLINE {}  (model {})",
        counts[0],
        counts[1],
        counts[2],
        detector.model_version()
    );
    println!(
        "late events applied {}, too late {}; {} cards, {} merchants in memory (~{} bytes/card)",
        stats.late_accepted,
        stats.too_late,
        mem.cards,
        mem.merchants,
        mem.card_bytes / mem.cards.max(1)
    );
    if skipped > 0 {
        println!("{skipped} invalid line(s) skipped, without a decision");
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
