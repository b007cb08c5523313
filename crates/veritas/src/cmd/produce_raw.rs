//! `veritas produce-raw TOPIC`: one record per stdin line.

use std::io::BufRead;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::client::ClientArgs;

/// `veritas produce-raw`.
#[derive(Debug, Clone, Args)]
pub struct ProduceRawArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Topic to write to.
    topic: String,
    /// Split each line at the first occurrence of this separator into key and value
    /// (e.g. `-K:` for `key:value` lines). Without it, lines are values with no key.
    #[arg(long, short = 'K', env = "VERITAS_KEY_SEPARATOR")]
    key_separator: Option<String>,
    /// Producer acks: 0, 1 or all.
    #[arg(long, env = "VERITAS_ACKS", default_value = "all")]
    acks: String,
}

/// Runs `veritas produce-raw`.
pub fn run(args: ProduceRawArgs) -> anyhow::Result<()> {
    let rt = super::client::runtime()?;
    let producer: FutureProducer = args
        .client
        .config()
        .set("acks", &args.acks)
        .set(
            "enable.idempotence",
            if args.acks == "all" { "true" } else { "false" },
        )
        .set("linger.ms", "5")
        .create()?;
    let stdin = std::io::stdin();
    let mut pending = Vec::new();
    let mut sent = 0u64;
    for line in stdin.lock().lines() {
        let line = line.context("reading stdin")?;
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k.to_owned()), v.to_owned()),
                None => (None, line.clone()),
            },
            None => (None, line.clone()),
        };
        let mut record = FutureRecord::to(&args.topic).payload(&value);
        if let Some(k) = &key {
            record = record.key(k);
        }
        pending.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .context("queueing record")?,
        );
        sent += 1;
        if pending.len() >= 10_000 {
            rt.block_on(wait_all(std::mem::take(&mut pending)))?;
        }
    }
    rt.block_on(wait_all(pending))?;
    let _ = rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30));
    eprintln!("produced {sent} record(s) to {}", args.topic);
    Ok(())
}

async fn wait_all(pending: Vec<rdkafka::producer::DeliveryFuture>) -> anyhow::Result<()> {
    for p in pending {
        match p.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(e).context("delivery failed"),
            Err(_) => anyhow::bail!("producer closed before delivery"),
        }
    }
    Ok(())
}
