//! `veritas produce [COUNT]`: realistic card transactions to Kafka, like the tutorial's producer
//! (`veritas produce 10` sends ten events to `bankaccount`) but with labelled fraud scenarios.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use veritas_events::{GeneratorConfig, ScenarioMix};

use crate::pipeline::producer::{self, Format, KeyMode, ProducerMetrics, ProducerSettings, Source};

/// Flags of `veritas produce`.
#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    /// Events to send (default: endless until Ctrl+C or --duration).
    pub count: Option<u64>,
    /// Kafka bootstrap servers.
    #[arg(
        long,
        short = 'b',
        env = "VERITAS_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,
    /// Topic to write.
    #[arg(
        long,
        short = 't',
        env = "VERITAS_TOPIC",
        default_value = "bankaccount"
    )]
    pub topic: String,
    /// Events per second (0: as fast as possible).
    #[arg(long, env = "VERITAS_RATE", default_value_t = 0.0)]
    pub rate: f64,
    /// Stop after this long (e.g. `30s`, `5m`).
    #[arg(long, env = "VERITAS_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Value format: canonical `transaction` JSON or the tutorial's `bankaccount` JSON.
    #[arg(long, env = "VERITAS_FORMAT", value_enum, default_value_t = Format::Transaction)]
    pub format: Format,
    /// Record key: the card number (keeps a card's events in order) or none.
    #[arg(long, env = "VERITAS_KEY", value_enum, default_value_t = KeyMode::Card)]
    pub key: KeyMode,
    /// Replay a labelled `.jsonl`/`.csv` file instead of generating.
    #[arg(long, env = "VERITAS_FILE")]
    pub file: Option<PathBuf>,
    /// With --file: replay at the file's own event-time pace × this factor.
    #[arg(long, env = "VERITAS_SPEED")]
    pub speed: Option<f64>,
    /// Producer acks: 0, 1 or all.
    #[arg(long, env = "VERITAS_ACKS", default_value = "all")]
    pub acks: String,
    /// Compression: none, gzip, snappy, lz4, zstd.
    #[arg(long, env = "VERITAS_COMPRESSION", default_value = "lz4")]
    pub compression: String,
    /// Generator seed.
    #[arg(long, env = "VERITAS_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Generated cardholders.
    #[arg(long, env = "VERITAS_CUSTOMERS", default_value_t = 20_000)]
    pub customers: u32,
    /// Share of fraudulent events.
    #[arg(long, env = "VERITAS_FRAUD_RATE", default_value_t = 0.01)]
    pub fraud_rate: f64,
    /// Scenario mix, e.g. `card_testing=2,stolen_card=1` (default: the generator's mix).
    #[arg(long, env = "VERITAS_FRAUD_MIX")]
    pub fraud_mix: Option<String>,
}

/// Parses `500ms`, `30s`, `5m`, `2h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration '{s}'"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("bad duration '{s}'"));
    }
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit in '{s}' (use ms, s, m or h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

impl ProduceArgs {
    /// The producer settings these flags describe.
    pub fn settings(&self) -> anyhow::Result<ProducerSettings> {
        if !matches!(self.acks.as_str(), "0" | "1" | "all" | "-1") {
            anyhow::bail!("--acks must be 0, 1 or all, got '{}'", self.acks);
        }
        let source = match &self.file {
            Some(path) => Source::File {
                path: path.clone(),
                speed: self.speed,
            },
            None => {
                let mut cfg = GeneratorConfig::live(self.seed, self.customers, chrono::Utc::now());
                cfg.fraud_rate = self.fraud_rate;
                if let Some(mix) = &self.fraud_mix {
                    cfg.mix = mix.parse::<ScenarioMix>().context("parsing --fraud-mix")?;
                }
                cfg.validate().context("generator settings")?;
                Source::Generator(cfg)
            }
        };
        let mut client = rdkafka::config::ClientConfig::new();
        client
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("broker.address.family", "v4");
        Ok(ProducerSettings {
            client,
            topic: self.topic.clone(),
            acks: self.acks.clone(),
            compression: self.compression.clone(),
            format: self.format,
            key: self.key,
            rate: self.rate,
            count: self.count,
            duration: self.duration,
            source,
        })
    }
}

/// Runs `veritas produce`.
pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let registry = prometheus::Registry::new();
    let metrics = ProducerMetrics::new(&registry)?;
    let stop = super::signals::stop_flag("stopping: flushing what was queued")?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = match args.count {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {human_pos}/{human_len} {per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Some(bar)
    } else {
        None
    };
    let on_queued = |n: u64| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    };
    let summary = producer::run(&settings, metrics, &stop, Some(&on_queued))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    eprintln!(
        "sent {} event(s) to {} ({} fraudulent, {} failed, {} skipped) in {:.2} s: {:.0} events/s; delivery p50 {:.2} ms, p99 {:.2} ms",
        summary.sent,
        settings.topic,
        summary.frauds,
        summary.failed,
        summary.skipped,
        summary.seconds,
        summary.sent as f64 / summary.seconds.max(1e-9),
        summary.delivery_p50_ms,
        summary.delivery_p99_ms,
    );
    if summary.failed > 0 {
        anyhow::bail!("{} event(s) were not delivered", summary.failed);
    }
    Ok(())
}
