//! `veritas topics list|create|describe|delete|alter-config`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

use super::client::{emit, print_json, runtime, table, ClientArgs, Output};

const TIMEOUT: Duration = Duration::from_secs(15);

/// `veritas topics`.
#[derive(Debug, Clone, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, Clone, Subcommand)]
enum TopicsCommand {
    /// List topics with their partition counts.
    List {
        /// Include internal topics (`__consumer_offsets`).
        #[arg(long, short = 'i', env = "VERITAS_TOPICS_INTERNAL")]
        internal: bool,
    },
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Partitions.
        #[arg(
            long,
            short = 'p',
            env = "VERITAS_TOPIC_PARTITIONS",
            default_value_t = 1
        )]
        partitions: i32,
        /// Replication factor (1 on the embedded broker).
        #[arg(
            long,
            short = 'r',
            env = "VERITAS_TOPIC_REPLICATION_FACTOR",
            default_value_t = 1
        )]
        replication_factor: i32,
        /// Topic config, `key=value` (repeatable), e.g. `retention.ms=3600000`.
        #[arg(long = "config", short = 'c', env = "VERITAS_TOPIC_CONFIG", value_parser = parse_kv)]
        configs: Vec<(String, String)>,
    },
    /// Partitions, offsets and configs of a topic.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete topics.
    Delete {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Set or remove topic configs, keeping the others.
    AlterConfig {
        /// Topic name.
        name: String,
        /// `key=value` to set (repeatable).
        #[arg(long = "set", short = 's', env = "VERITAS_TOPIC_SET", value_parser = parse_kv)]
        set: Vec<(String, String)>,
        /// Key to remove, returning it to the default (repeatable).
        #[arg(long = "delete", short = 'd', env = "VERITAS_TOPIC_DELETE_CONFIG")]
        delete: Vec<String>,
        /// Grow the topic to this many partitions.
        #[arg(long, env = "VERITAS_TOPIC_GROW_PARTITIONS")]
        partitions: Option<usize>,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got '{s}'"))?;
    if k.is_empty() {
        return Err(format!("empty key in '{s}'"));
    }
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

#[derive(Serialize)]
struct TopicRow {
    name: String,
    partitions: usize,
    internal: bool,
}

#[derive(Serialize)]
struct PartitionRow {
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    log_start_offset: i64,
    high_watermark: i64,
}

#[derive(Serialize)]
struct ConfigRow {
    name: String,
    value: Option<String>,
    source: String,
}

/// Runs `veritas topics`.
pub fn run(args: TopicsArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    let c = &args.client;
    match args.command {
        TopicsCommand::List { internal } => {
            let consumer: BaseConsumer = c.config().create()?;
            let md = consumer
                .fetch_metadata(None, TIMEOUT)
                .context("fetching metadata")?;
            let rows: Vec<TopicRow> = md
                .topics()
                .iter()
                .filter(|t| internal || !t.name().starts_with("__"))
                .map(|t| TopicRow {
                    name: t.name().to_owned(),
                    partitions: t.partitions().len(),
                    internal: t.name().starts_with("__"),
                })
                .collect();
            let mut rows = rows;
            rows.sort_by(|a, b| a.name.cmp(&b.name));
            if c.output == Output::Json {
                return print_json(&rows);
            }
            let mut t = table(["name", "partitions"]);
            for r in rows {
                t.add_row(vec![r.name, r.partitions.to_string()]);
            }
            emit(&t)?;
        }
        TopicsCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let admin: AdminClient<DefaultClientContext> = c.config().create()?;
            let mut topic = NewTopic::new(
                &name,
                partitions,
                TopicReplication::Fixed(replication_factor),
            );
            for (k, v) in &configs {
                topic = topic.set(k, v);
            }
            let results = rt.block_on(admin.create_topics(
                [&topic],
                &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
            ))?;
            for r in results {
                r.map_err(|(t, e)| anyhow::anyhow!("creating topic '{t}': {e}"))?;
            }
            if c.output == Output::Json {
                return print_json(&serde_json::json!({"created": name, "partitions": partitions}));
            }
            emit(format!(
                "created topic {name} with {partitions} partition(s)"
            ))?;
        }
        TopicsCommand::Describe { name } => {
            let consumer: BaseConsumer = c.config().create()?;
            let md = consumer.fetch_metadata(Some(&name), TIMEOUT)?;
            let topic = md.topics().first().context("no metadata returned")?;
            if let Some(e) = topic.error() {
                bail!("topic '{name}': {:?}", e);
            }
            let mut parts = Vec::new();
            for p in topic.partitions() {
                let (low, high) = consumer.fetch_watermarks(&name, p.id(), TIMEOUT)?;
                parts.push(PartitionRow {
                    partition: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    log_start_offset: low,
                    high_watermark: high,
                });
            }
            let configs = describe_configs(&rt, c, &name)?;
            if c.output == Output::Json {
                return print_json(
                    &serde_json::json!({"name": name, "partitions": parts, "configs": configs}),
                );
            }
            emit(format!("NAME        {name}\nPARTITIONS  {}\n", parts.len()))?;
            let mut t = table([
                "partition",
                "leader",
                "replicas",
                "log-start-offset",
                "high-watermark",
            ]);
            for p in &parts {
                t.add_row(vec![
                    p.partition.to_string(),
                    p.leader.to_string(),
                    format!("{:?}", p.replicas),
                    p.log_start_offset.to_string(),
                    p.high_watermark.to_string(),
                ]);
            }
            emit(format!(
                "{t}
"
            ))?;
            let mut t = table(["config", "value", "source"]);
            for r in configs {
                t.add_row(vec![r.name, r.value.unwrap_or_default(), r.source]);
            }
            emit(&t)?;
        }
        TopicsCommand::Delete { names } => {
            let admin: AdminClient<DefaultClientContext> = c.config().create()?;
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let results = rt.block_on(
                admin.delete_topics(&refs, &AdminOptions::new().operation_timeout(Some(TIMEOUT))),
            )?;
            let mut failed = false;
            for r in results {
                match r {
                    Ok(t) => emit(format!("deleted topic {t}"))?,
                    Err((t, e)) => {
                        eprintln!("error deleting topic '{t}': {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                bail!("some topics were not deleted");
            }
        }
        TopicsCommand::AlterConfig {
            name,
            set,
            delete,
            partitions,
        } => {
            let admin: AdminClient<DefaultClientContext> = c.config().create()?;
            if !set.is_empty() || !delete.is_empty() {
                // AlterConfigs replaces the whole override set: start from the current overrides.
                let mut overrides: BTreeMap<String, String> = describe_configs(&rt, c, &name)?
                    .into_iter()
                    .filter(|r| r.source == "topic")
                    .filter_map(|r| r.value.map(|v| (r.name, v)))
                    .collect();
                for (k, v) in set {
                    overrides.insert(k, v);
                }
                for k in delete {
                    overrides.remove(&k);
                }
                let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&name));
                for (k, v) in &overrides {
                    alter = alter.set(k, v);
                }
                let r = rt.block_on(admin.alter_configs(
                    [&alter],
                    &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
                ))?;
                for x in r {
                    x.map_err(|(_, e)| anyhow::anyhow!("altering '{name}': {e}"))?;
                }
                emit(format!("updated configs of {name}"))?;
            }
            if let Some(n) = partitions {
                let np = NewPartitions::new(&name, n);
                let r = rt.block_on(admin.create_partitions(
                    [&np],
                    &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
                ))?;
                for x in r {
                    x.map_err(|(_, e)| anyhow::anyhow!("growing '{name}': {e}"))?;
                }
                emit(format!("{name} now has {n} partitions"))?;
            }
        }
    }
    Ok(())
}

fn describe_configs(
    rt: &tokio::runtime::Runtime,
    c: &ClientArgs,
    name: &str,
) -> anyhow::Result<Vec<ConfigRow>> {
    let admin: AdminClient<DefaultClientContext> = c.config().create()?;
    let r = rt.block_on(admin.describe_configs(
        [&ResourceSpecifier::Topic(name)],
        &AdminOptions::new().request_timeout(Some(TIMEOUT)),
    ))?;
    let mut rows = Vec::new();
    for res in r {
        let res = res.map_err(|e| anyhow::anyhow!("describing configs of '{name}': {e}"))?;
        for e in res.entries {
            let source = match e.source {
                rdkafka::admin::ConfigSource::DynamicTopic => "topic",
                rdkafka::admin::ConfigSource::StaticBroker => "broker",
                rdkafka::admin::ConfigSource::Default => "default",
                _ => "other",
            };
            rows.push(ConfigRow {
                name: e.name,
                value: e.value,
                source: source.into(),
            });
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}
