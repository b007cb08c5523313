//! `veritas detect`: the fraud detector as a Kafka consumer-group member. Start several to share
//! the input topic's partitions; state follows partitions across restarts and rebalances.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use veritas_detect::{DetectorConfig, Model};

use crate::pipeline::detector::{self, DetectorMetrics, DetectorSettings, NoObserver};
use crate::pipeline::{ensure_topics, Topics};

/// Flags of `veritas detect`.
#[derive(Debug, Clone, Args)]
pub struct DetectArgs {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        short = 'b',
        env = "VERITAS_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,
    /// Input topic; decisions go to `<topic>.decisions`, invalid events to `<topic>.dlq`.
    #[arg(
        long,
        short = 't',
        env = "VERITAS_TOPIC",
        default_value = "bankaccount"
    )]
    pub topic: String,
    /// Consumer group: detectors with the same group share the partitions.
    #[arg(
        long,
        short = 'g',
        env = "VERITAS_GROUP",
        default_value = "veritas-detector"
    )]
    pub group: String,
    /// Model file from `veritas train` (default: rules only).
    #[arg(long, env = "VERITAS_MODEL")]
    pub model: Option<PathBuf>,
    /// Rules and thresholds (TOML; default: the built-in `config/rules.toml`).
    #[arg(long, env = "VERITAS_RULES")]
    pub rules: Option<PathBuf>,
    /// Partitions of the input topic if it has to be created.
    #[arg(long, env = "VERITAS_PARTITIONS", default_value_t = 1)]
    pub partitions: i32,
    /// Milliseconds between state checkpoints (and offset commits).
    #[arg(long, env = "VERITAS_CHECKPOINT_INTERVAL_MS", default_value_t = 1000)]
    pub checkpoint_interval_ms: u64,
    /// A full state snapshot every this many checkpoints (changelog deltas in between).
    #[arg(long, env = "VERITAS_SNAPSHOT_EVERY", default_value_t = 60)]
    pub snapshot_every: u32,
    /// Milliseconds between checkpoints of the shared merchant table (written by the instance
    /// owning input partition 0, to `<topic>.<group>.table`); 0: never, so every start reads
    /// the input from its beginning into the table.
    #[arg(
        long,
        env = "VERITAS_TABLE_CHECKPOINT_INTERVAL_MS",
        default_value_t = 60_000
    )]
    pub table_checkpoint_interval_ms: u64,
    /// Consumer-group session timeout in ms (librdkafka `session.timeout.ms`, default 45000):
    /// how long the group waits for a detector that died without leaving before handing its
    /// partitions to the others (or to its own restart). The broker accepts 6000 and up.
    #[arg(long, env = "VERITAS_SESSION_TIMEOUT_MS")]
    pub session_timeout_ms: Option<u64>,
    /// With no committed offset, start from the beginning of the topic (else from its end).
    #[arg(long, env = "VERITAS_FROM_BEGINNING")]
    pub from_beginning: bool,
    /// Print the tutorial's lines (`Received message | ...`, `--AUTHORIZED-- ...`) for every event.
    #[arg(long, env = "VERITAS_SEED_OUTPUT")]
    pub seed_output: bool,
    /// Serve Prometheus metrics at `http://ADDR/metrics`.
    #[arg(long, env = "VERITAS_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl DetectArgs {
    /// Loads rules and model and builds the detector settings.
    pub fn settings(&self) -> anyhow::Result<DetectorSettings> {
        let config = match &self.rules {
            Some(p) => DetectorConfig::from_toml(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("rules file {}", p.display()))?,
            None => DetectorConfig::default_toml()?,
        };
        let model = match &self.model {
            Some(p) => Some(load_model(p, &config)?),
            None => None,
        };
        let mut client = rdkafka::config::ClientConfig::new();
        client
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("broker.address.family", "v4");
        if let Some(ms) = self.session_timeout_ms {
            client
                .set("session.timeout.ms", ms.to_string())
                .set("heartbeat.interval.ms", (ms / 3).clamp(1, 3000).to_string());
        }
        Ok(DetectorSettings {
            client,
            topics: Topics::new(&self.topic, &self.group),
            group: self.group.clone(),
            config,
            model,
            checkpoint_interval: Duration::from_millis(self.checkpoint_interval_ms.max(50)),
            snapshot_every: self.snapshot_every,
            seed_output: self.seed_output,
            from_beginning: self.from_beginning,
            table_checkpoint_interval: (self.table_checkpoint_interval_ms > 0)
                .then(|| Duration::from_millis(self.table_checkpoint_interval_ms.max(50))),
        })
    }
}

/// Reads a model file, refusing one built for another feature set or trained with merchant
/// state kept another way than `config` serves it.
pub fn load_model(path: &std::path::Path, config: &DetectorConfig) -> anyhow::Result<Model> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading model {}", path.display()))?;
    let model =
        Model::from_json(&text).with_context(|| format!("loading model {}", path.display()))?;
    config
        .check_model(&model)
        .with_context(|| format!("model {}", path.display()))?;
    Ok(model)
}

/// Runs `veritas detect` until SIGINT/SIGTERM, then drains and exits.
pub fn run(args: DetectArgs) -> anyhow::Result<()> {
    // Handle SIGINT/SIGTERM from the very start, so a stop request is a clean drain.
    let stop = super::signals::stop_flag("stopping: draining and committing")?;
    let settings = args.settings()?;
    ensure_topics(&settings.client, &settings.topics, args.partitions)?;
    let registry = prometheus::Registry::new();
    let metrics = DetectorMetrics::new(&registry)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (metrics_stop, metrics_task) = runtime.block_on(super::broker::spawn_metrics(
        args.metrics_listen,
        registry.clone(),
    ))?;
    // The endpoint's server runs on its own thread alongside the detector loop.
    let metrics_thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            if let Some(t) = metrics_task {
                let _ = runtime.block_on(t);
            }
        })?;
    if !args.seed_output {
        eprintln!(
            "veritas detect: group {} on {} → {} (model: {})",
            settings.group,
            settings.topics.input,
            settings.topics.decisions,
            settings
                .model
                .as_ref()
                .map_or("rules only", |m| m.version())
        );
    }
    let summary = detector::run(settings, metrics, Arc::new(NoObserver), &stop);
    let _ = metrics_stop.send(());
    let _ = metrics_thread.join();
    let summary = summary?;
    eprintln!(
        "processed {} event(s): {} decision(s), {} dead letter(s), {} checkpoint(s)",
        summary.events, summary.decisions, summary.dead_letters, summary.checkpoints
    );
    Ok(())
}
