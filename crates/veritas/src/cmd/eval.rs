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
    /// Give up when more than this share of the events' rows is unreadable (the others are
    /// reported and skipped).
    #[arg(long, env = "VERITAS_MAX_BAD_FRACTION", default_value_t = super::rows::DEFAULT_MAX_BAD_FRACTION)]
    pub max_bad_fraction: f64,
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
    let events = read_labelled(&args.events, &args.label_field, args.max_bad_fraction)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::score::{run as score, ScoreArgs};
    use crate::cmd::train::{run as train, TrainArgs};
    use veritas_events::io::LabelledWriter;
    use veritas_events::{Generator, GeneratorConfig};

    /// train → score → eval on a small generated history: every stage reads the previous
    /// stage's files, and the decisions cover every event in input order. Two bad lines in
    /// the history are skipped by every stage (and get no decision), unless none may be.
    #[test]
    fn train_score_eval_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.jsonl");
        let mut w = LabelledWriter::create(&events).unwrap();
        let generator = Generator::new(GeneratorConfig {
            seed: 3,
            customers: 150,
            days: Some(20),
            fraud_rate: 0.03,
            ..GeneratorConfig::default()
        })
        .unwrap();
        let mut ids = Vec::new();
        for e in generator {
            ids.push(e.tx.transaction_id.clone());
            w.write(&e).unwrap();
        }
        w.finish().unwrap();
        let mut lines: Vec<String> = fs::read_to_string(&events)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.insert(10, "{not json".into());
        lines.insert(20, r#"{"transaction_id":"x","amount":"12"}"#.into());
        fs::write(&events, lines.join("\n") + "\n").unwrap();
        let model = dir.path().join("model.json");
        train(TrainArgs {
            input: events.clone(),
            out: model.clone(),
            label_field: "is_fraud".into(),
            rules: None,
            until: None,
            validation_fraction: 0.25,
            trees: 15,
            learning_rate: 0.2,
            max_depth: 4,
            scale_pos_weight: None,
            seed: 1,
            report: None,
            max_bad_fraction: 0.01,
        })
        .unwrap();
        let decisions = dir.path().join("decisions.jsonl");
        let score_args = |max_bad_fraction| ScoreArgs {
            input: events.clone(),
            model: Some(model.clone()),
            rules: None,
            out: decisions.clone(),
            tutorial_start_ms: None,
            max_bad_fraction,
        };
        let strict = score(score_args(0.0)).unwrap_err();
        assert!(
            crate::error_report(&strict).contains("2 of ")
                && crate::error_report(&strict).contains("rows unreadable"),
            "{strict:#}"
        );
        score(score_args(0.01)).unwrap();
        let text = fs::read_to_string(&decisions).unwrap();
        let got: Vec<Decision> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got.len(), ids.len());
        assert!(got.iter().zip(&ids).all(|(d, id)| &d.transaction_id == id));
        assert!(got.iter().all(|d| d.model_version.starts_with("gbdt-v1-")));
        let report = dir.path().join("report.json");
        run(EvalArgs {
            events,
            decisions,
            label_field: "is_fraud".into(),
            from: None,
            until: None,
            json: Some(report.clone()),
            max_bad_fraction: 0.01,
        })
        .unwrap();
        let r: veritas_detect::eval::EvalReport =
            serde_json::from_str(&fs::read_to_string(report).unwrap()).unwrap();
        assert_eq!(r.coverage, 1.0);
        assert!(r.frauds > 0);
        assert!(r.roc_auc.is_some_and(|auc| auc > 0.5), "{:?}", r.roc_auc);
    }
}
