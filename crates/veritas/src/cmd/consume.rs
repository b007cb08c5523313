//! `veritas consume TOPIC [--group G] [--from-beginning] [-n N]`: print records.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::client::{emit, ClientArgs, Output, QuietContext};

/// `veritas consume`.
#[derive(Debug, Clone, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Topic to read.
    topic: String,
    /// Join this consumer group (offsets committed, partitions shared with other members).
    #[arg(long, short = 'g', env = "VERITAS_GROUP")]
    group: Option<String>,
    /// Start from the earliest offset (without a group, or for a group with no committed offset).
    #[arg(long, env = "VERITAS_FROM_BEGINNING")]
    from_beginning: bool,
    /// Stop after this many records.
    #[arg(long, short = 'n', env = "VERITAS_CONSUME_COUNT")]
    count: Option<u64>,
    /// Stop when every assigned partition has been read to its end (no group only).
    #[arg(long, short = 'e', env = "VERITAS_EXIT_AT_END")]
    exit_at_end: bool,
}

/// Runs `veritas consume`.
pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let mut cfg = args.client.config();
    let group = args.group.clone();
    cfg.set("group.id", group.as_deref().unwrap_or("veritas-console"))
        .set(
            "enable.auto.commit",
            if group.is_some() { "true" } else { "false" },
        )
        .set(
            "auto.offset.reset",
            if args.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<QuietContext> = cfg.create_with_context(QuietContext)?;
    let mut open_partitions = 0usize;
    if group.is_some() {
        consumer.subscribe(&[&args.topic])?;
    } else {
        let md = consumer.fetch_metadata(Some(&args.topic), Duration::from_secs(15))?;
        let topic = md.topics().first().context("no metadata for topic")?;
        let mut tpl = TopicPartitionList::new();
        for p in topic.partitions() {
            let start = if args.from_beginning {
                Offset::Beginning
            } else {
                Offset::End
            };
            tpl.add_partition_offset(&args.topic, p.id(), start)?;
        }
        open_partitions = tpl.count();
        consumer.assign(&tpl)?;
    }
    let stop = super::signals::stop_flag("stopping")?;
    let mut seen = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if args.count.is_some_and(|n| seen >= n) {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_)))
                if args.exit_at_end && group.is_none() =>
            {
                open_partitions = open_partitions.saturating_sub(1);
                if open_partitions == 0 {
                    break;
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) if !crate::pipeline::consumer_error_ends_read(&e) => {
                tracing::warn!(error = %e, "consumer error; consuming on");
            }
            Some(Err(e)) => return Err(e).context("consuming"),
            Some(Ok(m)) => {
                seen += 1;
                let value = m.payload().map(|v| String::from_utf8_lossy(v).into_owned());
                if args.client.output == Output::Json {
                    let headers: Vec<_> = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| serde_json::json!({"key": h.key, "value": h.value.map(|v| String::from_utf8_lossy(v).into_owned())}))
                                .collect()
                        })
                        .unwrap_or_default();
                    let line = serde_json::json!({
                        "topic": m.topic(),
                        "partition": m.partition(),
                        "offset": m.offset(),
                        "timestamp": m.timestamp().to_millis(),
                        "key": m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                        "value": value,
                        "headers": headers,
                    });
                    emit(line)?;
                } else {
                    emit(value.unwrap_or_default())?;
                }
            }
        }
    }
    if group.is_some() && !crate::pipeline::leave_group(&consumer, Duration::from_secs(10)) {
        tracing::warn!("the consumer did not leave its group within 10 s; closing it anyway");
    }
    Ok(())
}
