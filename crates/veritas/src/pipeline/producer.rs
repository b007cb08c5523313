//! The transaction producer: generated (or replayed) card transactions to a Kafka topic.
//!
//! * Values are canonical transaction JSON, or exactly the tutorial's `BankAccount` JSON with
//!   `--format bankaccount`.
//! * Keys are the card number (default), so each card's events stay ordered in one partition —
//!   which is what makes per-partition detector state correct — or absent (`--key none`, as the
//!   tutorial does).
//! * Ground truth travels in record headers (`veritas-label`, `veritas-scenario`), never in the
//!   value.
//! * librdkafka with idempotence and batching: sends are queued, never awaited one by one.
//!
//! Generated events carry the generator's event time, which starts at the current time and
//! advances with the generator's clock; when `--rate` exceeds the population's natural rate the
//! event time runs faster than the wall clock (time compression), which keeps the demo lively.
//! Kafka record timestamps are the wall clock at send time, so latencies are real.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use prometheus::{Histogram as PromHistogram, HistogramOpts, IntCounter, Registry};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use veritas_events::{BankAccount, Generator, GeneratorConfig, LabelledTransaction};

use super::{LABEL_HEADER, SCENARIO_HEADER};

/// Which JSON goes in the record value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The canonical transaction event (docs/events.md).
    Transaction,
    /// The tutorial's `{"FirstName","LastName","CreditCardNumber","Amount"}`.
    Bankaccount,
}

/// What goes in the record key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyMode {
    /// The card number: a card's events stay in order in one partition.
    Card,
    /// No key (the tutorial's choice).
    None,
}

/// Where events come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The synthetic generator, endless.
    Generator(GeneratorConfig),
    /// A labelled `.jsonl`/`.csv` file; `speed` replays at its own event-time pace × speed.
    File {
        /// The file.
        path: PathBuf,
        /// Event-time speed-up; `None` sends as fast as `rate` allows.
        speed: Option<f64>,
    },
}

/// How to produce.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    /// librdkafka configuration (bootstrap servers and any extra settings).
    pub client: ClientConfig,
    /// Topic to write.
    pub topic: String,
    /// `0`, `1` or `all`.
    pub acks: String,
    /// `none`, `gzip`, `snappy`, `lz4`, `zstd`.
    pub compression: String,
    /// Value format.
    pub format: Format,
    /// Key choice.
    pub key: KeyMode,
    /// Events per second (wall clock); 0 = as fast as possible.
    pub rate: f64,
    /// Stop after this many events.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Event source.
    pub source: Source,
}

/// Producer metrics, registered in a Prometheus registry.
#[derive(Clone)]
pub struct ProducerMetrics {
    /// Records acknowledged by the broker.
    pub sent: IntCounter,
    /// Records whose delivery failed.
    pub failed: IntCounter,
    /// Send → acknowledgement time.
    pub delivery_seconds: PromHistogram,
}

impl ProducerMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> anyhow::Result<Self> {
        let m = ProducerMetrics {
            sent: IntCounter::new(
                "veritas_producer_sent_total",
                "Records acknowledged by the broker",
            )?,
            failed: IntCounter::new(
                "veritas_producer_failed_total",
                "Records whose delivery failed",
            )?,
            delivery_seconds: PromHistogram::with_opts(
                HistogramOpts::new(
                    "veritas_producer_delivery_seconds",
                    "Send to acknowledgement time",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
        };
        registry.register(Box::new(m.sent.clone()))?;
        registry.register(Box::new(m.failed.clone()))?;
        registry.register(Box::new(m.delivery_seconds.clone()))?;
        Ok(m)
    }
}

/// What a producer run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProduceSummary {
    /// Records acknowledged.
    pub sent: u64,
    /// Records whose delivery failed.
    pub failed: u64,
    /// Input lines skipped as invalid (file replay).
    pub skipped: u64,
    /// Fraudulent events among those queued.
    pub frauds: u64,
    /// Wall time.
    pub seconds: f64,
    /// Delivery latency percentiles, milliseconds.
    pub delivery_p50_ms: f64,
    /// 99th percentile.
    pub delivery_p99_ms: f64,
}

struct Deliveries {
    metrics: ProducerMetrics,
    latency: Mutex<Histogram<u64>>,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    /// Delivery latency is measured from the record's timestamp, set by librdkafka when the
    /// record was queued (millisecond resolution, no allocation per record).
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let queued_ms = m.timestamp().to_millis().unwrap_or(0);
                let elapsed_ms = (now_ms() - queued_ms).max(0) as u64;
                self.metrics.sent.inc();
                self.metrics
                    .delivery_seconds
                    .observe(elapsed_ms as f64 / 1000.0);
                let _ = self.latency.lock().record(elapsed_ms.max(1) * 1000);
            }
            Err((e, _)) => {
                self.metrics.failed.inc();
                let mut first = self.first_error.lock();
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
    }
}

/// Hooks for progress display: called with the number of records queued so far (after
/// every record when the producer is paced, every thousand at full speed, and at the end).
pub type OnQueued<'a> = &'a (dyn Fn(u64) + Sync);

/// Runs the producer until its count or duration is reached, its source ends, or `stop` is set.
pub fn run(
    settings: &ProducerSettings,
    metrics: ProducerMetrics,
    stop: &AtomicBool,
    on_queued: Option<OnQueued<'_>>,
) -> anyhow::Result<ProduceSummary> {
    let ctx = Deliveries {
        metrics,
        latency: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        first_error: Mutex::new(None),
    };
    let producer: ThreadedProducer<Deliveries> = settings
        .client
        .clone()
        .set("acks", &settings.acks)
        .set(
            "enable.idempotence",
            if settings.acks == "all" {
                "true"
            } else {
                "false"
            },
        )
        .set("compression.type", &settings.compression)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(ctx)
        .context("creating the Kafka producer")?;

    let skipped = Arc::new(AtomicU64::new(0));
    let events: Box<dyn Iterator<Item = anyhow::Result<LabelledTransaction>> + Send> =
        match &settings.source {
            Source::Generator(cfg) => {
                let generator = Generator::new(cfg.clone()).context("configuring the generator")?;
                Box::new(generator.map(Ok))
            }
            Source::File { path, .. } => {
                let reader = veritas_events::io::LabelledReader::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                let path = path.clone();
                let skipped = skipped.clone();
                Box::new(reader.filter_map(move |(line, r)| match r {
                Ok(e) => Some(Ok(e)),
                Err(e) if e.is_per_event() => {
                    tracing::warn!(file = %path.display(), line, error = %e, "skipping invalid line");
                    skipped.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Err(e) => Some(Err(anyhow::Error::new(e).context(format!("reading {} at line {line}", path.display())))),
            }))
            }
        };

    let started = Instant::now();
    let mut queued = 0u64;
    let mut frauds = 0u64;
    let mut first_event_ms: Option<i64> = None;
    let speed = match &settings.source {
        Source::File { speed, .. } => *speed,
        Source::Generator(_) => None,
    };
    let paced = speed.is_some_and(|s| s > 0.0) || settings.rate > 0.0;
    // Two stages on two threads: one generates and encodes events in batches, this one paces
    // them and hands them to librdkafka. Either alone costs about as much as the other.
    let format = settings.format;
    let limit = settings.count;
    let (batches, incoming) = std::sync::mpsc::sync_channel::<anyhow::Result<Vec<Prepared>>>(8);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let preparer = scope.spawn(move || prepare(events, format, limit, stop, batches));
        'send: for batch in incoming.iter() {
            for event in batch? {
                if stop.load(Ordering::Relaxed)
                    || settings.duration.is_some_and(|d| started.elapsed() >= d)
                {
                    break 'send;
                }
                // Pacing: by event time for a replay at a given speed, else by the rate.
                if let Some(speed) = speed.filter(|s| *s > 0.0) {
                    let t0 = *first_event_ms.get_or_insert(event.event_ms);
                    let due = started
                        + Duration::from_secs_f64(
                            ((event.event_ms - t0).max(0) as f64 / 1000.0) / speed,
                        );
                    sleep_until(due, stop);
                } else if settings.rate > 0.0 {
                    let due = started + Duration::from_secs_f64(queued as f64 / settings.rate);
                    sleep_until(due, stop);
                }
                let mut headers = OwnedHeaders::new_with_capacity(2).insert(Header {
                    key: LABEL_HEADER,
                    value: Some(if event.fraud { "1" } else { "0" }),
                });
                if let Some(s) = &event.scenario {
                    headers = headers.insert(Header {
                        key: SCENARIO_HEADER,
                        value: Some(s.as_str()),
                    });
                }
                if event.fraud {
                    frauds += 1;
                }
                let mut record = BaseRecord::with_opaque_to(&settings.topic, ())
                    .payload(&event.value)
                    .headers(headers);
                if settings.key == KeyMode::Card {
                    record = record.key(&event.card);
                }
                let mut record = Some(record);
                while let Some(r) = record.take() {
                    match producer.send(r) {
                        Ok(()) => {}
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            producer.poll(Duration::from_millis(1));
                            record = Some(r);
                        }
                        Err((e, _)) => bail!("producing to {}: {e}", settings.topic),
                    }
                }
                queued += 1;
                if let Some(f) = on_queued {
                    // A paced producer sleeps between events anyway, so it reports every one
                    // (the demo's counts of events and decisions then agree); a producer at
                    // full speed reports every thousand.
                    if paced || queued.is_multiple_of(1000) {
                        f(queued);
                    }
                }
            }
        }
        // Ends the preparer if it is still producing (stop, duration): it sees the channel closed.
        drop(incoming);
        preparer
            .join()
            .map_err(|_| anyhow::anyhow!("the event preparer panicked"))?
    })?;
    if let Some(f) = on_queued {
        f(queued);
    }
    producer
        .flush(Duration::from_secs(60))
        .context("waiting for outstanding deliveries")?;
    let seconds = started.elapsed().as_secs_f64();
    let ctx = producer.context();
    let hist = ctx.latency.lock();
    let failed = ctx.metrics.failed.get();
    if let Some(e) = ctx.first_error.lock().as_ref() {
        tracing::error!(error = %e, failed, "some deliveries failed");
    }
    Ok(ProduceSummary {
        sent: hist.len(),
        failed,
        skipped: skipped.load(Ordering::Relaxed),
        frauds,
        seconds,
        delivery_p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
        delivery_p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

/// One event ready to send.
struct Prepared {
    card: String,
    value: Vec<u8>,
    fraud: bool,
    scenario: Option<String>,
    event_ms: i64,
}

/// The first stage: generates (or reads) events and encodes them, in batches.
fn prepare(
    mut events: Box<dyn Iterator<Item = anyhow::Result<LabelledTransaction>> + Send + '_>,
    format: Format,
    limit: Option<u64>,
    stop: &AtomicBool,
    out: std::sync::mpsc::SyncSender<anyhow::Result<Vec<Prepared>>>,
) -> anyhow::Result<()> {
    const BATCH: usize = 512;
    let mut made = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut batch = Vec::with_capacity(BATCH);
        while batch.len() < BATCH && limit.is_none_or(|n| made < n) {
            let Some(event) = events.next() else { break };
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    let _ = out.send(Err(e));
                    return Ok(());
                }
            };
            let mut value = Vec::with_capacity(512);
            match format {
                Format::Transaction => veritas_events::encode_event_into(&event.tx, &mut value),
                Format::Bankaccount => {
                    let b = BankAccount {
                        first_name: event.tx.first_name.clone().unwrap_or_default(),
                        last_name: event.tx.last_name.clone().unwrap_or_default(),
                        credit_card_number: event.tx.card_number.clone(),
                        amount: event.tx.amount,
                    };
                    serde_json::to_writer(&mut value, &b)?;
                }
            }
            made += 1;
            batch.push(Prepared {
                event_ms: event.tx.timestamp.timestamp_millis(),
                card: event.tx.card_number,
                value,
                fraud: event.label.is_fraud,
                scenario: event.label.scenario,
            });
        }
        if batch.is_empty() {
            return Ok(()); // source exhausted or count reached
        }
        if out.send(Ok(batch)).is_err() {
            return Ok(()); // the sender stopped
        }
    }
    Ok(())
}

fn sleep_until(due: Instant, stop: &AtomicBool) {
    loop {
        let now = Instant::now();
        if now >= due || stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(100)));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
