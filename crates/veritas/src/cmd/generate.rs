//! `veritas generate`: labelled synthetic history for training and evaluation.
//!
//! Streams [`veritas_events::Generator`] (deterministic: same flags, same bytes) into a
//! `.jsonl` or `.csv` file in event-time order, with a progress bar on stderr and a
//! summary (events, frauds by scenario, rate, elapsed, throughput) at the end. The file
//! is written under a temporary name and renamed when complete, so an interrupted run
//! never leaves a truncated data set behind.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use veritas_events::io::{FileFormat, LabelledWriter};
use veritas_events::{parse_timestamp, Generator, GeneratorConfig, Scenario, ScenarioMix};

/// Flags of `veritas generate`. Every flag can also be set through its `VERITAS_*`
/// variable.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// Number of cardholders (one card each at a time).
    #[arg(long, env = "VERITAS_CUSTOMERS", default_value_t = 10_000)]
    pub customers: u32,
    /// Days of history to generate.
    #[arg(long, env = "VERITAS_DAYS", default_value_t = 30)]
    pub days: u32,
    /// Seed of every random choice: same flags and seed, same file, byte for byte.
    #[arg(long, env = "VERITAS_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Output file; `.jsonl` or `.csv` chooses the format.
    #[arg(long, env = "VERITAS_GENERATE_OUT")]
    pub out: PathBuf,
    /// Fraction of transactions that are fraudulent, within [0, 0.5].
    #[arg(long, env = "VERITAS_FRAUD_RATE", default_value_t = 0.01)]
    pub fraud_rate: f64,
    /// Event time of the first day (RFC 3339).
    #[arg(long, env = "VERITAS_START", default_value = "2025-01-01T00:00:00Z")]
    pub start: String,
    /// Share of fraudulent transactions per scenario, e.g.
    /// `card_testing=2,stolen_card=1` (unnamed scenarios get 0). Scenarios: card_testing,
    /// stolen_card, account_takeover, impossible_travel, small_then_large,
    /// compromised_merchant. Default: 25/20/15/10/10/20 %.
    #[arg(long, env = "VERITAS_FRAUD_MIX")]
    pub mix: Option<String>,
    /// Mean legitimate transactions per cardholder per day.
    #[arg(long, env = "VERITAS_DAILY_TRANSACTIONS", default_value_t = 2.0)]
    pub daily_transactions: f64,
}

impl GenerateArgs {
    /// The generator configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<GeneratorConfig> {
        let start = parse_timestamp(&self.start).context("--start")?;
        let mix = match &self.mix {
            Some(m) => m.parse::<ScenarioMix>().context("--mix")?,
            None => ScenarioMix::default(),
        };
        let config = GeneratorConfig {
            seed: self.seed,
            customers: self.customers,
            start,
            days: Some(self.days),
            fraud_rate: self.fraud_rate,
            mix,
            mean_daily_transactions: self.daily_transactions,
        };
        config.validate()?;
        Ok(config)
    }
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Transactions written.
    pub events: u64,
    /// Fraudulent transactions written, per scenario, in [`Scenario::ALL`] order.
    pub frauds: Vec<(Scenario, u64)>,
    /// Seconds from start (world building included) to the file being complete.
    pub elapsed_secs: f64,
}

impl Summary {
    /// All fraudulent transactions.
    pub fn total_frauds(&self) -> u64 {
        self.frauds.iter().map(|(_, n)| n).sum()
    }
}

/// Run `veritas generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let summary = generate(&args, true)?;
    print!("{}", render(&args.out, &summary));
    Ok(())
}

/// Generate the file; `progress` draws the bar on stderr (hidden when not a terminal).
pub fn generate(args: &GenerateArgs, progress: bool) -> anyhow::Result<Summary> {
    let started = Instant::now();
    FileFormat::from_path(&args.out)?;
    let config = args.config()?;
    let mut generator = Generator::new(config).context("building the synthetic world")?;
    tracing::info!(
        customers = args.customers,
        days = args.days,
        seed = args.seed,
        out = %args.out.display(),
        "generating labelled transactions"
    );

    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating directory {}", dir.display()))?;
    }
    let partial = partial_path(&args.out)?;
    let mut writer = LabelledWriter::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;

    let start_ms = generator.start().timestamp_millis();
    let span_secs = u64::from(args.days) * 86_400;
    let bar = if progress {
        progress_bar(span_secs)
    } else {
        ProgressBar::hidden()
    };
    let mut events = 0u64;
    let result = (|| -> anyhow::Result<()> {
        for event in generator.by_ref() {
            writer
                .write(&event)
                .with_context(|| format!("writing {}", partial.display()))?;
            events += 1;
            if events & 0x3FFF == 0 {
                let secs = (event.tx.timestamp.timestamp_millis() - start_ms).max(0) / 1000;
                bar.set_position(secs.unsigned_abs());
                bar.set_message(format!("{events} events"));
            }
        }
        writer
            .finish()
            .with_context(|| format!("flushing {}", partial.display()))?;
        std::fs::rename(&partial, &args.out)
            .with_context(|| format!("renaming {} to {}", partial.display(), args.out.display()))?;
        Ok(())
    })();
    bar.finish_and_clear();
    if let Err(e) = result {
        // Leave no truncated file behind; the error says what went wrong.
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }

    let stats = *generator.stats();
    debug_assert_eq!(stats.events, events);
    let summary = Summary {
        events,
        frauds: Scenario::ALL
            .iter()
            .map(|&s| (s, stats.frauds_by(s)))
            .collect(),
        elapsed_secs: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        events,
        frauds = summary.total_frauds(),
        elapsed_secs = summary.elapsed_secs,
        "generation complete"
    );
    Ok(summary)
}

/// `out` with `.partial` appended to its file name.
fn partial_path(out: &Path) -> anyhow::Result<PathBuf> {
    let Some(name) = out.file_name() else {
        bail!("--out {} has no file name", out.display());
    };
    let mut partial = name.to_os_string();
    partial.push(".partial");
    // Keep the real extension last so the writer picks the same format.
    let ext = out.extension().unwrap_or_default();
    let mut with_ext = partial;
    with_ext.push(".");
    with_ext.push(ext);
    Ok(out.with_file_name(with_ext))
}

fn progress_bar(span_secs: u64) -> ProgressBar {
    let bar = ProgressBar::new(span_secs);
    let style = ProgressStyle::with_template(
        "{spinner} generating [{elapsed_precise}] {wide_bar} {percent:>3}% of event time, {msg} (eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// The human summary printed at the end of a run.
pub fn render(out: &Path, s: &Summary) -> String {
    let frauds = s.total_frauds();
    let pct = |n: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            100.0 * n as f64 / of as f64
        }
    };
    let rate = if s.elapsed_secs > 0.0 {
        s.events as f64 / s.elapsed_secs
    } else {
        0.0
    };
    let mut text = format!(
        "wrote {} events to {} in {:.2} s ({:.0} events/s)\nfrauds: {} ({:.2} % of events)\n",
        s.events,
        out.display(),
        s.elapsed_secs,
        rate,
        frauds,
        pct(frauds, s.events),
    );
    for (scenario, n) in &s.frauds {
        text.push_str(&format!(
            "  {:<22}{:>10}  ({:.1} % of frauds)\n",
            scenario.as_str(),
            n,
            pct(*n, frauds)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use veritas_events::io::LabelledReader;

    fn args(out: PathBuf) -> GenerateArgs {
        GenerateArgs {
            customers: 120,
            days: 10,
            seed: 5,
            out,
            fraud_rate: 0.05,
            start: "2025-06-01T00:00:00Z".into(),
            mix: None,
            daily_transactions: 2.0,
        }
    }

    #[test]
    fn writes_a_time_ordered_labelled_file_in_either_format() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut outputs = Vec::new();
        for name in ["nested/history.jsonl", "history.csv"] {
            let out = dir.path().join(name);
            let summary = generate(&args(out.clone()), false).unwrap_or_else(|e| panic!("{e:#}"));
            assert!(summary.events > 1000, "{summary:?}");
            assert!(summary.total_frauds() > 0);
            let mut last = None;
            let mut n = 0u64;
            let mut frauds = 0u64;
            let mut events = Vec::new();
            for (line, item) in LabelledReader::open(&out).unwrap_or_else(|e| panic!("{e}")) {
                let e = item.unwrap_or_else(|e| panic!("{name}:{line}: {e}"));
                assert!(last.is_none_or(|t| t <= e.tx.timestamp));
                last = Some(e.tx.timestamp);
                n += 1;
                frauds += u64::from(e.label.is_fraud);
                events.push(e);
            }
            assert_eq!(n, summary.events);
            assert_eq!(frauds, summary.total_frauds());
            let text = render(&out, &summary);
            assert!(
                text.contains("card_testing") && text.contains("events/s"),
                "{text}"
            );
            // No partial file is left behind.
            let leftovers = std::fs::read_dir(out.parent().unwrap_or(dir.path()))
                .map(|d| {
                    d.flatten()
                        .filter(|f| f.file_name().to_string_lossy().contains("partial"))
                        .count()
                })
                .unwrap_or(0);
            assert_eq!(leftovers, 0);
            outputs.push(events);
        }
        // The two formats hold the same data.
        assert_eq!(outputs[0], outputs[1]);
    }

    #[test]
    fn same_flags_same_bytes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = dir.path().join("a.jsonl");
        let b = dir.path().join("b.jsonl");
        generate(&args(a.clone()), false).unwrap_or_else(|e| panic!("{e:#}"));
        generate(&args(b.clone()), false).unwrap_or_else(|e| panic!("{e:#}"));
        let (a, b) = (
            std::fs::read(a).unwrap_or_default(),
            std::fs::read(b).unwrap_or_default(),
        );
        assert!(!a.is_empty());
        assert_eq!(a, b);
    }

    #[test]
    fn bad_flags_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let bad = [
            GenerateArgs {
                out: dir.path().join("x.parquet"),
                ..args(dir.path().join("x"))
            },
            GenerateArgs {
                start: "yesterday".into(),
                ..args(dir.path().join("x.jsonl"))
            },
            GenerateArgs {
                fraud_rate: 2.0,
                ..args(dir.path().join("x.jsonl"))
            },
            GenerateArgs {
                mix: Some("bogus=1".into()),
                ..args(dir.path().join("x.jsonl"))
            },
            GenerateArgs {
                customers: 0,
                ..args(dir.path().join("x.jsonl"))
            },
        ];
        for a in bad {
            assert!(generate(&a, false).is_err(), "{a:?}");
        }
        assert_eq!(
            std::fs::read_dir(dir.path())
                .map(|d| d.count())
                .unwrap_or(1),
            0
        );
    }

    #[test]
    fn flags_parse_from_the_command_line() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: GenerateArgs,
        }
        let cli = Cli::try_parse_from([
            "generate",
            "--customers",
            "7",
            "--days",
            "3",
            "--seed",
            "9",
            "--out",
            "x.csv",
            "--fraud-rate",
            "0.02",
            "--start",
            "2024-02-29T12:00:00Z",
            "--mix",
            "card_testing=1",
            "--daily-transactions",
            "4",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let config = cli.args.config().unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(config.customers, 7);
        assert_eq!(config.days, Some(3));
        assert_eq!(config.seed, 9);
        assert_eq!(config.fraud_rate, 0.02);
        assert_eq!(config.mean_daily_transactions, 4.0);
        assert_eq!(config.mix.share(Scenario::CardTesting), 1.0);
        assert_eq!(config.start.to_rfc3339(), "2024-02-29T12:00:00+00:00");
    }
}
