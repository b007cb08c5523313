//! `veritas bench`: broker throughput and end-to-end latency, measured with librdkafka.
//!
//! Without `--bootstrap-servers` it starts the embedded broker in-process, with its data on disk
//! in a temporary directory (or `--data-dir`), so the figures include the real storage path.
//! With it, the same measurements run against any Kafka.
//!
//! * **Produce**: `--records` records of `--record-size` bytes, as fast as librdkafka sends them
//!   (linger 5 ms, 1 MB batches), for each acks setting and partition count asked for. The clock
//!   stops when the last delivery report arrives.
//! * **Consume**: the same records read back from the beginning by one consumer.
//! * **Latency**: records sent at a fixed `--latency-rate` with their send time inside; a consumer
//!   with default settings measures send → receive, reported as p50 / p99 / p99.9.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use veritas_broker::{Broker, BrokerConfig};

/// Flags of `veritas bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Benchmark an external Kafka instead of the embedded broker.
    #[arg(long, env = "VERITAS_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: Option<String>,
    /// Data directory of the embedded broker (default: a temporary directory on disk).
    #[arg(long, env = "VERITAS_BENCH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Records per throughput run.
    #[arg(long, env = "VERITAS_BENCH_RECORDS", default_value_t = 3_000_000)]
    pub records: u64,
    /// Value size in bytes.
    #[arg(long, env = "VERITAS_BENCH_RECORD_SIZE", default_value_t = 100)]
    pub record_size: usize,
    /// Acks settings to measure (`1`, `all`).
    #[arg(
        long,
        env = "VERITAS_BENCH_ACKS",
        value_delimiter = ',',
        default_value = "1,all"
    )]
    pub acks: Vec<String>,
    /// Partition counts to measure.
    #[arg(
        long,
        env = "VERITAS_BENCH_PARTITIONS",
        value_delimiter = ',',
        default_value = "1,6"
    )]
    pub partitions: Vec<i32>,
    /// Records per second in the latency run (0 skips it).
    #[arg(long, env = "VERITAS_BENCH_LATENCY_RATE", default_value_t = 10_000)]
    pub latency_rate: u64,
    /// Seconds the latency run lasts.
    #[arg(long, env = "VERITAS_BENCH_LATENCY_SECONDS", default_value_t = 10)]
    pub latency_seconds: u64,
    /// Skip the throughput runs (latency only).
    #[arg(long, env = "VERITAS_BENCH_LATENCY_ONLY")]
    pub latency_only: bool,
}

/// One measured run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// What was measured.
    pub run: String,
    /// Records moved.
    pub records: u64,
    /// Seconds taken.
    pub seconds: f64,
}

impl Row {
    fn rate(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

struct CountingContext {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Runs the benchmark and prints the results.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (broker, _tmp, bootstrap) = match &args.bootstrap_servers {
        Some(b) => (None, None, b.clone()),
        None => {
            let (dir, tmp) = match &args.data_dir {
                Some(d) => (d.clone(), None),
                None => {
                    let t = tempfile::Builder::new()
                        .prefix("veritas-bench-")
                        .tempdir_in(std::env::current_dir()?)?;
                    (t.path().to_owned(), Some(t))
                }
            };
            let mut cfg = BrokerConfig::new(&dir);
            cfg.listen = "127.0.0.1:0".parse()?;
            let broker = runtime.block_on(Broker::start(cfg, &prometheus::Registry::new()))?;
            let b = broker.bootstrap_servers();
            eprintln!("embedded broker on {b}, data in {}", dir.display());
            (Some(broker), tmp, b)
        }
    };
    let mut rows = Vec::new();
    let payload = vec![b'x'; args.record_size];
    if !args.latency_only {
        for acks in &args.acks {
            for &partitions in &args.partitions {
                let topic = format!("bench-acks{acks}-p{partitions}-{}", std::process::id());
                create_topic(&runtime, &bootstrap, &topic, partitions)?;
                let row = produce(&bootstrap, &topic, acks, args.records, &payload)?;
                print_row(&row, args.record_size);
                rows.push(row);
                let row = consume(&bootstrap, &topic, partitions, args.records)?;
                print_row(&row, args.record_size);
                rows.push(row);
            }
        }
    }
    if args.latency_rate > 0 {
        let topic = format!("bench-latency-{}", std::process::id());
        create_topic(&runtime, &bootstrap, &topic, 1)?;
        let hist = latency(
            &bootstrap,
            &topic,
            args.latency_rate,
            args.latency_seconds,
            args.record_size,
        )?;
        println!(
            "latency @ {} rec/s for {} s: {} samples, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            args.latency_rate,
            args.latency_seconds,
            hist.len(),
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
            hist.value_at_quantile(0.999) as f64 / 1000.0,
            hist.max() as f64 / 1000.0,
        );
    }
    if let Some(b) = broker {
        runtime.block_on(b.shutdown())?;
    }
    Ok(())
}

fn print_row(row: &Row, size: usize) {
    println!(
        "{:<28} {:>10} records in {:>6.2} s: {:>10.0} records/s {:>8.1} MB/s",
        row.run,
        row.records,
        row.seconds,
        row.rate(),
        row.rate() * size as f64 / 1e6
    );
}

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4");
    c
}

fn create_topic(
    rt: &tokio::runtime::Runtime,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap).create()?;
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let r = rt.block_on(admin.create_topics([&t], &AdminOptions::new()))?;
    for x in r {
        x.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

fn produce(
    bootstrap: &str,
    topic: &str,
    acks: &str,
    n: u64,
    payload: &[u8],
) -> anyhow::Result<Row> {
    let ctx = CountingContext {
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    };
    let producer: BaseProducer<CountingContext> = base_config(bootstrap)
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2097151")
        .set(
            "enable.idempotence",
            if acks == "all" { "true" } else { "false" },
        )
        .create_with_context(ctx)?;
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < n {
        match producer.send::<(), [u8]>(BaseRecord::to(topic).payload(payload)) {
            Ok(()) => sent += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => bail!("produce failed: {e}"),
        }
        if sent.is_multiple_of(10_000) {
            producer.poll(Duration::ZERO);
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flushing")?;
    let seconds = started.elapsed().as_secs_f64();
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 || ctx.delivered.load(Ordering::Relaxed) != n {
        bail!(
            "{failed} deliveries failed, {} delivered of {n}",
            ctx.delivered.load(Ordering::Relaxed)
        );
    }
    Ok(Row {
        run: format!("produce acks={acks} p={}", partitions_of(topic)),
        records: n,
        seconds,
    })
}

fn partitions_of(topic: &str) -> String {
    topic
        .split('-')
        .find_map(|s| s.strip_prefix('p'))
        .unwrap_or("?")
        .to_owned()
}

fn consume(bootstrap: &str, topic: &str, partitions: i32, n: u64) -> anyhow::Result<Row> {
    let consumer: BaseConsumer = base_config(bootstrap)
        .set("group.id", "veritas-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.message.max.bytes", "4194304")
        .set("queued.max.messages.kbytes", "1048576")
        // Keep the fetcher ahead of the application: by default librdkafka pauses fetching for
        // up to a second once 100k messages are queued locally.
        .set("queued.min.messages", "1000000")
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let mut got = 0u64;
    while got < n {
        if started.elapsed() > Duration::from_secs(300) {
            bail!("consume timed out at {got} of {n}");
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => got += 1,
            Some(Err(e)) if !crate::pipeline::consumer_error_ends_read(&e) => {
                tracing::warn!(error = %e, "consumer error; consuming on");
            }
            Some(Err(e)) => bail!("consume failed: {e}"),
            None => {}
        }
    }
    Ok(Row {
        run: format!("consume p={partitions}"),
        records: n,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn latency(
    bootstrap: &str,
    topic: &str,
    rate: u64,
    seconds: u64,
    size: usize,
) -> anyhow::Result<Histogram<u64>> {
    let total = rate * seconds;
    let consumer: BaseConsumer = base_config(bootstrap)
        .set("group.id", "veritas-bench-latency")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let epoch = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut seen = 0u64;
            while seen < total && !done.load(Ordering::Relaxed) {
                if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) if !crate::pipeline::consumer_error_ends_read(&e) => {
                            tracing::warn!(error = %e, "consumer error; consuming on");
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    let sent_us = m
                        .payload()
                        .and_then(|p| p.get(..8))
                        .map(|b| {
                            u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                        })
                        .unwrap_or(0);
                    let now_us = epoch.elapsed().as_micros() as u64;
                    hist.record(now_us.saturating_sub(sent_us).max(1))?;
                    seen += 1;
                }
            }
            Ok(hist)
        })
    };
    let producer: BaseProducer = base_config(bootstrap)
        .set("acks", "1")
        .set("linger.ms", "0")
        .create()?;
    // Give the consumer time to start fetching, so startup is not measured as latency.
    std::thread::sleep(Duration::from_millis(1500));
    let mut payload = vec![b'x'; size.max(8)];
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    for i in 0..total {
        let due = start + interval * i as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let t = epoch.elapsed().as_micros() as u64;
        payload[..8].copy_from_slice(&t.to_le_bytes());
        loop {
            match producer.send::<(), [u8]>(BaseRecord::to(topic).payload(&payload)) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("produce failed: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    done.store(true, Ordering::Relaxed);
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("latency reader panicked"))?
}
