//! `veritas demo`: the whole system in one command, on a bare machine.
//!
//! Starts the embedded broker (unless `--bootstrap-servers` points at a Kafka cluster), creates
//! the topics, loads or trains a model (cached in the data directory), then runs the generator →
//! producer, the detector (a consumer-group member, exactly as `veritas detect` runs) and the
//! live dashboard, printing a stats line every few seconds until Ctrl+C or `--duration`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use veritas_broker::{Broker, BrokerConfig, BrokerError};
use veritas_detect::training::{replay_with_progress, train_model, TrainConfig};
use veritas_detect::{Decision, DetectorConfig, Model};
use veritas_events::{Generator, GeneratorConfig, LabelledTransaction, Transaction};

use crate::dashboard::{self, BrokerMode, BrokerView, DecisionView, InfoView, LiveStats};
use crate::pipeline::detector::{self, DetectorMetrics, DetectorSettings, Observer, Truth};
use crate::pipeline::producer::{self, Format, KeyMode, ProducerMetrics, ProducerSettings, Source};
use crate::pipeline::{ensure_topics, Topics};

/// Flags of `veritas demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Run against this Kafka instead of the embedded broker.
    #[arg(long, short = 'b', env = "VERITAS_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: Option<String>,
    /// Keep broker data and the trained model here (default: a temporary directory).
    #[arg(long, env = "VERITAS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where the embedded broker listens (the next free port is taken if it is busy).
    #[arg(long, env = "VERITAS_BROKER_LISTEN", default_value = "127.0.0.1:9092")]
    pub broker_listen: SocketAddr,
    /// Events per second from the producer.
    #[arg(long, env = "VERITAS_RATE", default_value_t = 3000.0)]
    pub rate: f64,
    /// Stop after this long (e.g. `60s`); default: until Ctrl+C.
    #[arg(long, env = "VERITAS_DURATION", value_parser = super::produce::parse_duration)]
    pub duration: Option<Duration>,
    /// Do not serve the dashboard.
    #[arg(long, env = "VERITAS_NO_DASHBOARD")]
    pub no_dashboard: bool,
    /// Dashboard address (the next free port is taken if it is busy).
    #[arg(
        long,
        env = "VERITAS_DASHBOARD_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub dashboard_listen: SocketAddr,
    /// Partitions of the transactions topic.
    #[arg(long, env = "VERITAS_PARTITIONS", default_value_t = 6)]
    pub partitions: i32,
    /// Model file (default: trained on generated history, cached in the data directory).
    #[arg(long, env = "VERITAS_MODEL")]
    pub model: Option<PathBuf>,
    /// Cardholders in the live stream (fewer cardholders build card histories faster).
    #[arg(long, env = "VERITAS_CUSTOMERS", default_value_t = 5_000)]
    pub customers: u32,
    /// Share of fraudulent events in the live stream.
    #[arg(long, env = "VERITAS_FRAUD_RATE", default_value_t = 0.01)]
    pub fraud_rate: f64,
    /// Seed of the generator.
    #[arg(long, env = "VERITAS_SEED", default_value_t = 7)]
    pub seed: u64,
    /// Seconds between stats lines.
    #[arg(long, env = "VERITAS_STATS_INTERVAL", default_value_t = 5)]
    pub stats_interval: u64,
}

/// How long the demo waits for the detector's first partition assignment before producing.
const DETECTOR_JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Feeds the dashboard from the detector, and tells the demo once the detector consumes.
struct DashboardObserver {
    stats: Arc<LiveStats>,
    /// Set at the detector's first partition assignment.
    consuming: Arc<AtomicBool>,
}

impl Observer for DashboardObserver {
    fn assigned(&self, partitions: &[i32]) {
        if !partitions.is_empty() {
            self.consuming.store(true, Ordering::Relaxed);
        }
    }
    fn decision(&self, decision: &Decision, tx: &Transaction, truth: &Truth) {
        let mut view = DecisionView::from_decision(decision, tx.amount);
        view.merchant = tx.merchant.clone();
        view.label = truth.label;
        view.scenario = truth.scenario.clone();
        self.stats.record_decision(&view);
    }
    fn dead_letter(&self) {
        self.stats.record_dlq();
    }
    fn lag(&self, partition: i32, lag: i64) {
        self.stats.set_lag(partition, lag);
    }
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let _tmp;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            let t = tempfile::Builder::new().prefix("veritas-demo-").tempdir()?;
            let p = t.path().to_owned();
            _tmp = t;
            p
        }
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let registry = prometheus::Registry::new();

    // 1. Kafka: embedded broker, or the cluster given.
    let (broker, bootstrap) = match &args.bootstrap_servers {
        Some(b) => (None, b.clone()),
        None => {
            let broker =
                runtime.block_on(start_broker(&args, &data_dir.join("broker"), &registry))?;
            let b = broker.bootstrap_servers();
            (Some(broker), b)
        }
    };
    let mut client = rdkafka::config::ClientConfig::new();
    client
        .set("bootstrap.servers", &bootstrap)
        .set("broker.address.family", "v4");
    let group = "veritas-demo-detector";
    let topics = Topics::new("bankaccount", group);
    let partitions = ensure_topics(&client, &topics, args.partitions).context("creating topics")?;
    eprintln!(
        "kafka: {} ({}), topic {} with {partitions} partitions",
        bootstrap,
        if broker.is_some() {
            "embedded broker"
        } else {
            "external cluster"
        },
        topics.input
    );

    // 2. The model.
    let model = match &args.model {
        Some(p) => super::detect::load_model(p, &DetectorConfig::default_toml()?)?,
        None => cached_or_trained_model(&data_dir, args.seed, partitions)?,
    };
    eprintln!("model: {}", model.version());

    // 3. Dashboard state and server.
    let stats = Arc::new(LiveStats::new());
    stats.set_info(InfoView {
        mode: if broker.is_some() {
            BrokerMode::Embedded
        } else {
            BrokerMode::External
        },
        bootstrap_servers: bootstrap.clone(),
        model_version: model.version().to_owned(),
        target_rate: Some(args.rate),
        fraud_rate: Some(args.fraud_rate),
        input_topic: topics.input.clone(),
        decisions_topic: topics.decisions.clone(),
        dlq_topic: topics.dlq.clone(),
        group_id: group.into(),
    });
    let (dash_stop_tx, dash_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let dashboard_task = if args.no_dashboard {
        None
    } else {
        let bound = runtime
            .block_on(dashboard::bind_next_free(args.dashboard_listen, 20))
            .with_context(|| format!("binding the dashboard near {}", args.dashboard_listen))?;
        eprintln!("{}", bound.message());
        let (stats, registry) = (stats.clone(), registry.clone());
        Some(runtime.spawn(async move {
            dashboard::serve(bound.listener, stats, registry, async move {
                let _ = dash_stop_rx.await;
            })
            .await
        }))
    };

    // 4. Producer and detector threads.
    let stop_producer = Arc::new(AtomicBool::new(false));
    let stop_detector = Arc::new(AtomicBool::new(false));
    // On a reused data directory the detector's state continues from the last run: continue the
    // event-time clock after the last event too, or every new event would be "late".
    let start = match last_event_time(&client, &topics.input, partitions) {
        Some(last) if last > chrono::Utc::now() => {
            eprintln!("generator: continuing event time after the previous run ({last})");
            last + chrono::Duration::seconds(1)
        }
        _ => chrono::Utc::now(),
    };
    let mut gen = GeneratorConfig::live(args.seed, args.customers, start);
    gen.fraud_rate = args.fraud_rate;
    gen.validate().context("generator settings")?;
    let producer_settings = ProducerSettings {
        client: client.clone(),
        topic: topics.input.clone(),
        acks: "all".into(),
        compression: "lz4".into(),
        format: Format::Transaction,
        key: KeyMode::Card,
        rate: args.rate,
        count: None,
        duration: None,
        source: Source::Generator(gen),
    };
    let detector_settings = DetectorSettings {
        client: client.clone(),
        topics: topics.clone(),
        group: group.into(),
        config: DetectorConfig::default_toml()?,
        model: Some(model),
        checkpoint_interval: Duration::from_secs(1),
        snapshot_every: 60,
        seed_output: false,
        from_beginning: true,
        table_checkpoint_interval: Some(Duration::from_secs(30)),
    };
    let detector_metrics = DetectorMetrics::new(&registry)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        runtime.spawn(async move {
            if super::broker::wait_for_signal().await.is_ok() {
                interrupted.store(true, Ordering::Relaxed);
            }
        });
    }
    let detector_consuming = Arc::new(AtomicBool::new(false));
    let detector_thread = {
        let stop = stop_detector.clone();
        let observer: Arc<dyn Observer> = Arc::new(DashboardObserver {
            stats: stats.clone(),
            consuming: detector_consuming.clone(),
        });
        std::thread::Builder::new()
            .name("detector".into())
            .spawn(move || detector::run(detector_settings, detector_metrics, observer, &stop))?
    };
    // The producer starts once the detector has joined its group and consumes, so the first
    // events do not wait for the group to form (their latency would count the join).
    let joined_by = Instant::now() + DETECTOR_JOIN_TIMEOUT;
    while !detector_consuming.load(Ordering::Relaxed)
        && !detector_thread.is_finished()
        && !interrupted.load(Ordering::Relaxed)
        && Instant::now() < joined_by
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    if !detector_consuming.load(Ordering::Relaxed)
        && !detector_thread.is_finished()
        && !interrupted.load(Ordering::Relaxed)
    {
        tracing::warn!(
            waited = ?DETECTOR_JOIN_TIMEOUT,
            "the detector has not been assigned partitions yet; producing anyway"
        );
    }
    let producer_metrics = ProducerMetrics::new(&registry)?;
    let producer_thread = {
        let stop = stop_producer.clone();
        let stats = stats.clone();
        std::thread::Builder::new()
            .name("producer".into())
            .spawn(move || {
                let reported = AtomicU64::new(0);
                let on_queued = |n: u64| {
                    let before = reported.swap(n, Ordering::Relaxed);
                    stats.record_produced(n.saturating_sub(before));
                };
                producer::run(
                    &producer_settings,
                    producer_metrics,
                    &stop,
                    Some(&on_queued),
                )
            })?
    };

    // 5. Wait: Ctrl+C, --duration, or a component failing; refresh the broker panel, print stats.
    let started = Instant::now();
    let mut last_line = Instant::now();
    eprintln!(
        "running{}; Ctrl+C stops",
        args.duration
            .map(|d| format!(" for {d:?}"))
            .unwrap_or_default()
    );
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if let Some(b) = &broker {
            stats.set_broker(BrokerView::from_cluster(&b.shared().cluster, false));
        }
        if last_line.elapsed() >= Duration::from_secs(args.stats_interval.max(1)) {
            print_stats_line(&stats);
            last_line = Instant::now();
        }
        if interrupted.load(Ordering::Relaxed) {
            eprintln!("stopping");
            break;
        }
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if producer_thread.is_finished() || detector_thread.is_finished() {
            eprintln!("a pipeline component stopped; shutting down");
            break;
        }
    }

    // 6. Stop in order: producer, then the detector drains what was produced, then the rest.
    stop_producer.store(true, Ordering::Relaxed);
    let produced = producer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("producer thread panicked"))?;
    let drain_deadline = Instant::now() + Duration::from_secs(20);
    while stats.snapshot().total_lag > 0
        && Instant::now() < drain_deadline
        && !detector_thread.is_finished()
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop_detector.store(true, Ordering::Relaxed);
    let detected = detector_thread
        .join()
        .map_err(|_| anyhow::anyhow!("detector thread panicked"))?;
    let _ = dash_stop_tx.send(());
    if let Some(t) = dashboard_task {
        let _ = runtime.block_on(t);
    }
    if let Some(b) = broker {
        runtime
            .block_on(b.shutdown())
            .context("stopping the broker")?;
    }
    print_stats_line(&stats);
    let produced = produced.context("producer")?;
    let detected = detected.context("detector")?;
    eprintln!(
        "done: produced {} event(s), {} decision(s), {} dead letter(s), {} checkpoint(s)",
        produced.sent, detected.decisions, detected.dead_letters, detected.checkpoints
    );
    Ok(())
}

/// The largest event time among the last record of each partition of `topic`, if any.
fn last_event_time(
    client: &rdkafka::config::ClientConfig,
    topic: &str,
    partitions: i32,
) -> Option<chrono::DateTime<chrono::Utc>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = client
        .clone()
        .set("group.id", "veritas-demo-resume")
        .create()
        .ok()?;
    let mut last = None;
    for p in 0..partitions {
        let Ok((_, high)) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)) else {
            continue;
        };
        if high == 0 {
            continue;
        }
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Offset(high - 1))
            .ok()?;
        consumer.assign(&tpl).ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let ctx = veritas_events::RecordContext::new(
                    topic,
                    p,
                    m.offset(),
                    m.timestamp().to_millis().unwrap_or(0),
                );
                if let Ok(tx) = veritas_events::decode_event(m.payload().unwrap_or_default(), &ctx)
                {
                    last = last.max(Some(tx.timestamp));
                }
                break;
            }
        }
    }
    last
}

async fn start_broker(
    args: &DemoArgs,
    dir: &Path,
    registry: &prometheus::Registry,
) -> anyhow::Result<Broker> {
    let mut addr = args.broker_listen;
    for attempt in 0..20u16 {
        let mut cfg = BrokerConfig::new(dir);
        cfg.listen = addr;
        // The demo's detector group starts with one member; waiting Kafka's default 3 s for
        // more only holds back the first decisions (Kafka's own single-node quickstarts set
        // group.initial.rebalance.delay.ms to 0 for the same reason; so does docker-compose.yml).
        cfg.groups.initial_rebalance_delay = Duration::ZERO;
        // Binding comes before any metric is registered, so a failed attempt leaves the
        // registry untouched and the next port can be tried with it.
        match Broker::start(cfg, registry).await {
            Ok(broker) => {
                if attempt > 0 {
                    eprintln!(
                        "broker: port {} is in use, listening on {} instead",
                        args.broker_listen.port(),
                        addr.port()
                    );
                }
                return Ok(broker);
            }
            Err(BrokerError::Bind { cause, .. })
                if cause.kind() == std::io::ErrorKind::AddrInUse && addr.port() != 0 =>
            {
                addr.set_port(addr.port().saturating_add(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!(
        "no free port near {} for the broker (try --broker-listen 127.0.0.1:0)",
        args.broker_listen
    )
}

/// The model cached in `data_dir`, or one trained on generated history (and cached), replayed
/// through as many engines as the input topic has partitions, as the detector will serve it.
fn cached_or_trained_model(data_dir: &Path, seed: u64, partitions: i32) -> anyhow::Result<Model> {
    let path = data_dir.join(format!("model-p{partitions}.json"));
    if path.exists() {
        match super::detect::load_model(&path, &DetectorConfig::default_toml()?) {
            Ok(m) => {
                eprintln!("model: using the cached {}", path.display());
                return Ok(m);
            }
            Err(e) => eprintln!(
                "model: cached model unusable ({}); training a new one",
                crate::error_report(&e)
            ),
        }
    }
    let started = Instant::now();
    let mut cfg = GeneratorConfig {
        seed,
        customers: 3000,
        days: Some(45),
        ..GeneratorConfig::default()
    };
    cfg.fraud_rate = 0.01;
    let events: Vec<LabelledTransaction> = Generator::new(cfg)?.collect();
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(events.len() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "training: replaying history {bar:30} {human_pos}/{human_len}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut detector = DetectorConfig::default_toml()?;
    detector.engine.partitions = partitions.max(1) as u32;
    let replayed = replay_with_progress(&events, &detector.engine, |n| bar.set_position(n as u64));
    bar.finish_and_clear();
    let spinner = if std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    spinner.set_message("training: fitting gradient-boosted trees");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let mut train = TrainConfig::default();
    train.gbdt.n_trees = train.gbdt.n_trees.min(150);
    let (model, report) = train_model(&replayed, &train, |_| spinner.tick())?;
    spinner.finish_and_clear();
    eprintln!(
        "model: trained on {} generated events in {:.1} s (validation AP {})",
        events.len(),
        started.elapsed().as_secs_f64(),
        report.valid_ap.map_or("n/a".into(), |v| format!("{v:.3}"))
    );
    std::fs::write(&path, model.to_json())
        .with_context(|| format!("caching the model in {}", path.display()))?;
    Ok(model)
}

fn print_stats_line(stats: &LiveStats) {
    let s = stats.snapshot();
    let pct = |v: Option<f64>| v.map_or("  -  ".into(), |v| format!("{:.3}", v));
    let ms = |v: Option<u64>| v.map_or("-".into(), |v| format!("{:.1}", v as f64 / 1000.0));
    eprintln!(
        "events {:>9} ({:>6.0}/s) | approve {} review {} decline {} dlq {} | precision {} recall {} | latency p50 {} ms p99 {} ms | lag {}",
        s.totals.produced,
        s.rates.events_in,
        s.totals.approve,
        s.totals.review,
        s.totals.decline,
        s.totals.dlq,
        pct(s.quality.decline.precision),
        pct(s.quality.decline.recall),
        ms(s.latency.window.p50_us),
        ms(s.latency.window.p99_us),
        s.total_lag,
    );
}
