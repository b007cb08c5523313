//! `veritas train`: fit the fraud model on labelled history.
//!
//! Replays the labelled events in timestamp order through the same engine the detector
//! runs, so training features are exactly the serving features; fits the GBDT with a
//! time-based validation split (the latest part of the history), reports validation
//! metrics (model alone and model + rules), and writes the versioned model file.

use std::fs;
use std::io::{BufRead, BufReader, Cursor};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use veritas_detect::eval::{evaluate, Scored};
use veritas_detect::gbdt::GbdtParams;
use veritas_detect::training::{
    parse_time_ms, replay_with_progress, time_split, train_model, TrainConfig,
};
use veritas_detect::{Detector, DetectorConfig, Features};
use veritas_events::io::{CsvReader, FileFormat, LabelledReader};
use veritas_events::LabelledTransaction;

use super::rows::BadRows;

/// Flags of `veritas train`. Every flag can also be set through its `VERITAS_*` variable.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Labelled events (`.jsonl` or `.csv`).
    #[arg(long, env = "VERITAS_TRAIN_INPUT")]
    pub input: PathBuf,
    /// Where to write the model file.
    #[arg(long, env = "VERITAS_MODEL_OUT")]
    pub out: PathBuf,
    /// Name of the 0/1 (or true/false) fraud label field in the input.
    #[arg(long, env = "VERITAS_LABEL_FIELD", default_value = "is_fraud")]
    pub label_field: String,
    /// Give up when more than this share of the input's rows is unreadable (the others
    /// are reported and skipped).
    #[arg(long, env = "VERITAS_MAX_BAD_FRACTION", default_value_t = super::rows::DEFAULT_MAX_BAD_FRACTION)]
    pub max_bad_fraction: f64,
    /// Rules / detector configuration (TOML); the built-in default when absent.
    #[arg(long, env = "VERITAS_RULES")]
    pub rules: Option<PathBuf>,
    /// Only train on events strictly before this time (RFC 3339), e.g. to hold out a test period.
    #[arg(long, env = "VERITAS_TRAIN_UNTIL")]
    pub until: Option<String>,
    /// Share of the (time-ordered) history held out for validation and early stopping.
    #[arg(long, env = "VERITAS_VALIDATION_FRACTION", default_value_t = 0.2)]
    pub validation_fraction: f64,
    /// Maximum number of trees.
    #[arg(long, env = "VERITAS_TREES", default_value_t = 400)]
    pub trees: usize,
    /// Shrinkage per tree.
    #[arg(long, env = "VERITAS_LEARNING_RATE", default_value_t = 0.08)]
    pub learning_rate: f64,
    /// Maximum depth of each tree.
    #[arg(long, env = "VERITAS_MAX_DEPTH", default_value_t = 6)]
    pub max_depth: usize,
    /// Weight of fraud rows (default: sqrt(negatives / positives), within [1, 100]).
    #[arg(long, env = "VERITAS_SCALE_POS_WEIGHT")]
    pub scale_pos_weight: Option<f64>,
    /// Seed of row/feature subsampling.
    #[arg(long, env = "VERITAS_SEED", default_value_t = 0x5eed)]
    pub seed: u64,
    /// Also write the training report (JSON) here.
    #[arg(long, env = "VERITAS_TRAIN_REPORT")]
    pub report: Option<PathBuf>,
}

pub(crate) fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!(
        "{what:>10} [{{bar:40}}] {{human_pos}}/{{human_len}} ({{per_sec}}, eta {{eta}})"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb
}

pub(crate) fn spinner(what: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template(&format!("{what:>10} {{human_pos}} ({{per_sec}})"))
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    pb.set_style(style);
    pb
}

/// The detector configuration from `--rules`, or the built-in default.
pub(crate) fn load_config(rules: Option<&Path>) -> anyhow::Result<DetectorConfig> {
    match rules {
        Some(p) => {
            let text = fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            DetectorConfig::from_toml(&text).with_context(|| format!("in {}", p.display()))
        }
        None => Ok(DetectorConfig::default_toml()?),
    }
}

/// Rename the label column of a CSV header from `field` to `is_fraud`.
fn rename_csv_label(bytes: &mut Vec<u8>, field: &str) -> anyhow::Result<()> {
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let header = std::str::from_utf8(&bytes[..end]).context("CSV header is not UTF-8")?;
    let mut found = false;
    let renamed: Vec<String> = header
        .trim_end_matches('\r')
        .split(',')
        .map(|c| {
            let name = c.trim().trim_matches('"');
            if name == field {
                found = true;
                "is_fraud".to_owned()
            } else if name == "is_fraud" {
                // The original is_fraud column (if any) is not the label: hide it.
                "is_fraud_original".to_owned()
            } else {
                c.to_owned()
            }
        })
        .collect();
    if !found {
        bail!("label field {field:?} is not a column of the CSV header");
    }
    let mut out = renamed.join(",").into_bytes();
    out.extend_from_slice(&bytes[end..]);
    *bytes = out;
    Ok(())
}

/// Read a labelled `.jsonl` / `.csv` file whose fraud label is in column `label_field`,
/// skipping bad rows as [`BadRows`] says (at most `max_bad_fraction` of them).
pub(crate) fn read_labelled(
    path: &Path,
    label_field: &str,
    max_bad_fraction: f64,
) -> anyhow::Result<Vec<LabelledTransaction>> {
    let pb = spinner("reading");
    let mut out = Vec::new();
    let mut bad_rows = BadRows::new(max_bad_fraction);
    let mut push = |line: u64, r: Result<LabelledTransaction, veritas_events::EventError>| {
        match r {
            Ok(e) => {
                out.push(e);
                pb.inc(1);
            }
            Err(e) => bad_rows.skip(path, line, e)?,
        }
        anyhow::Ok(())
    };
    if label_field == "is_fraud" {
        for (line, r) in
            LabelledReader::open(path).with_context(|| format!("opening {}", path.display()))?
        {
            push(line, r)?;
        }
    } else {
        match FileFormat::from_path(path)? {
            FileFormat::Csv => {
                let mut bytes =
                    fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                rename_csv_label(&mut bytes, label_field)?;
                for (line, r) in CsvReader::new(Cursor::new(bytes)) {
                    push(line, r)?;
                }
            }
            FileFormat::Jsonl => {
                let file =
                    fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
                for (i, line) in BufReader::new(file).lines().enumerate() {
                    let line = line?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let mut obj: serde_json::Map<String, serde_json::Value> =
                        match serde_json::from_str(&line) {
                            Ok(obj) => obj,
                            Err(e) => {
                                push(i as u64 + 1, Err(e.into()))?;
                                continue;
                            }
                        };
                    let label = obj.remove(label_field).with_context(|| {
                        format!(
                            "{}:{}: no label field {label_field:?}",
                            path.display(),
                            i + 1
                        )
                    })?;
                    obj.insert("is_fraud".to_owned(), label);
                    let bytes = serde_json::to_vec(&obj)?;
                    push(i as u64 + 1, veritas_events::decode_labelled(&bytes))?;
                }
            }
        }
    }
    pb.finish_and_clear();
    let skipped = bad_rows.finish(out.len() as u64)?;
    if skipped > 0 {
        tracing::warn!("{}: {skipped} bad row(s) skipped", path.display());
    }
    Ok(out)
}

/// Write `bytes` to `path` atomically (temporary file + rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.4}"))
}

/// Run `veritas train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = load_config(args.rules.as_deref())?;
    let mut events = read_labelled(&args.input, &args.label_field, args.max_bad_fraction)?;
    if let Some(until) = &args.until {
        let until = parse_time_ms(until)?;
        events.retain(|e| e.tx.timestamp.timestamp_millis() < until);
    }
    if events.is_empty() {
        bail!("no labelled events to train on in {}", args.input.display());
    }
    let frauds = events.iter().filter(|e| e.label.is_fraud).count();
    eprintln!(
        "read {} events ({} fraud, {:.3} %) in {:.1} s",
        events.len(),
        frauds,
        100.0 * frauds as f64 / events.len() as f64,
        started.elapsed().as_secs_f64()
    );

    let pb = progress_bar(events.len() as u64, "replaying");
    let data = replay_with_progress(&events, &config.engine, |n| pb.set_position(n as u64));
    pb.finish_and_clear();
    drop(events);

    let train_cfg = TrainConfig {
        gbdt: GbdtParams {
            n_trees: args.trees,
            learning_rate: args.learning_rate,
            max_depth: args.max_depth,
            scale_pos_weight: args.scale_pos_weight,
            seed: args.seed,
            ..GbdtParams::default()
        },
        validation_fraction: args.validation_fraction,
    };
    let pb = progress_bar(args.trees as u64, "training");
    let t_fit = Instant::now();
    let (model, report) = train_model(&data, &train_cfg, |p| {
        pb.set_position(p.trees as u64);
        if let Some(v) = p.valid_loss {
            pb.set_message(format!("valid loss {v:.5}"));
        }
    })?;
    pb.finish_and_clear();
    let fit_secs = t_fit.elapsed().as_secs_f64();

    // Validation through the full decision path: model + rules + thresholds.
    let (split, _) = time_split(&data.timestamps, args.validation_fraction);
    let detector = Detector::new(config.clone(), Some(model.clone()));
    let scored: Vec<Scored> = (split..data.dataset.len())
        .filter_map(|i| {
            let f = Features::from_slice(data.dataset.row(i))?;
            let a = detector.assess_features(f);
            Some(Scored {
                is_fraud: data.dataset.label(i),
                scenario: data.scenarios.get(i).cloned().flatten(),
                score: a.score,
                decision: a.verdict,
                latency_us: None,
            })
        })
        .collect();
    let valid_eval = evaluate(&scored, scored.len() as u64);

    println!("Training");
    println!(
        "  train rows        {:>10} ({} fraud)",
        report.train_rows, report.train_positives
    );
    println!(
        "  validation rows   {:>10} ({} fraud)",
        report.valid_rows, report.valid_positives
    );
    println!(
        "  trees             {:>10} kept of {} built",
        report.trees_kept, report.trees_built
    );
    println!("  scale_pos_weight  {:>10.2}", report.scale_pos_weight);
    println!("  fit time          {:>10.1} s", fit_secs);
    println!("Validation (model probability)");
    println!("  average precision {:>10}", fmt_opt(report.valid_ap));
    println!("  ROC AUC           {:>10}", fmt_opt(report.valid_auc));
    println!(
        "  recall @ P>=0.90  {:>10}   (probability threshold {})",
        fmt_opt(report.valid_recall_at_p90),
        fmt_opt(report.valid_threshold_at_p90)
    );
    println!("  top features by gain:");
    for (name, share) in report.importance.iter().take(12) {
        println!("    {name:<28} {:>6.2} %", share * 100.0);
    }
    println!("Validation (model + rules, configured thresholds)");
    print!("{valid_eval}");

    write_atomic(&args.out, model.to_json().as_bytes())?;
    println!("wrote {} ({})", args.out.display(), model.version());
    if let Some(path) = &args.report {
        let json = serde_json::json!({ "training": report, "validation": valid_eval, "model_version": model.version() });
        write_atomic(path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_label_column_is_renamed() {
        let mut b = b"id,amt,fraud_flag,is_fraud\n1,2,1,0\n".to_vec();
        rename_csv_label(&mut b, "fraud_flag").unwrap();
        assert_eq!(b, b"id,amt,is_fraud,is_fraud_original\n1,2,1,0\n".to_vec());
        let mut b = b"id,amt\n1,2\n".to_vec();
        assert!(rename_csv_label(&mut b, "fraud_flag").is_err());
    }
}
