//! `veritas eval`: judge decisions against labelled events.
//!
//! Joins decisions to events by `transaction_id` and prints coverage, precision, recall
//! and F1 at DECLINE, average precision, ROC AUC, recall at precision ≥ 0.9, the
//! confusion matrix, per-scenario recall and latency percentiles.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use veritas_detect::eval::{evaluate, Scored};
use veritas_detect::training::parse_time_ms;
use veritas_detect::Decision;

use super::train::{read_labelled, write_atomic};

/// Flags of `veritas eval`. Every flag can also be set through its `VERITAS_*` variable.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// Labelled events (`.jsonl` or `.csv`).
    #[arg(long, env = "VERITAS_EVAL_EVENTS")]
    pub events: PathBuf,
    /// Decisions from `veritas score` or the live detector (`.jsonl`).
    #[arg(long, env = "VERITAS_EVAL_DECISIONS")]
    pub decisions: PathBuf,
    /// Name of the fraud label field in the events.
    #[arg(long, env = "VERITAS_LABEL_FIELD", default_value = "is_fraud")]
    pub label_field: String,
    /// Only judge events at or after this time (RFC 3339), e.g. the start of a test period.
    #[arg(long, env = "VERITAS_EVAL_FROM")]
    pub from: Option<String>,
    /// Only judge events strictly before this time (RFC 3339).
    #[arg(long, env = "VERITAS_EVAL_UNTIL")]
    pub until: Option<String>,
    /// Also write the report as JSON here.
    #[arg(long, env = "VERITAS_EVAL_JSON")]
    pub json: Option<PathBuf>,
}

/// Run `veritas eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let from = args.from.as_deref().map(parse_time_ms).transpose()?;
    let until = args.until.as_deref().map(parse_time_ms).transpose()?;
    let file = fs::File::open(&args.decisions)
        .with_context(|| format!("opening {}", args.decisions.display()))?;
    let mut decisions: HashMap<String, Decision> = HashMap::new();
    for (i, line) in BufReader::with_capacity(1 << 16, file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let d: Decision = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}", args.decisions.display(), i + 1))?;
        decisions.insert(d.transaction_id.clone(), d);
    }
    let events = read_labelled(&args.events, &args.label_field)?;
    let mut total = 0u64;
    let mut scored = Vec::with_capacity(events.len());
    for e in &events {
        let t = e.tx.timestamp.timestamp_millis();
        if from.is_some_and(|f| t < f) || until.is_some_and(|u| t >= u) {
            continue;
        }
        total += 1;
        if let Some(d) = decisions.get(&e.tx.transaction_id) {
            scored.push(Scored {
                is_fraud: e.label.is_fraud,
                scenario: e.label.scenario.clone(),
                score: d.score,
                decision: d.decision,
                latency_us: d.latency_us,
            });
        }
    }
    let report = evaluate(&scored, total);
    print!("{report}");
    if let Some(path) = &args.json {
        write_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}
