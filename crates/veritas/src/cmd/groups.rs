//! `veritas groups list|describe|reset-offsets`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, Subcommand};
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::client::{emit, print_json, table, ClientArgs, Output};

const TIMEOUT: Duration = Duration::from_secs(15);

/// `veritas groups`.
#[derive(Debug, Clone, Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Debug, Clone, Subcommand)]
enum GroupsCommand {
    /// List consumer groups.
    List,
    /// State, members, assignments, committed offsets and lag of a group.
    Describe {
        /// Group id.
        group: String,
    },
    /// Move an empty group's committed offsets.
    ResetOffsets {
        /// Group id.
        group: String,
        /// To each partition's log start offset.
        #[arg(long, group = "target", env = "VERITAS_RESET_TO_EARLIEST")]
        to_earliest: bool,
        /// To each partition's high watermark.
        #[arg(long, group = "target", env = "VERITAS_RESET_TO_LATEST")]
        to_latest: bool,
        /// To this offset (clamped to the partition's range).
        #[arg(long, group = "target", env = "VERITAS_RESET_TO_OFFSET")]
        to_offset: Option<i64>,
        /// Only this topic (default: every topic the group has offsets for).
        #[arg(long, env = "VERITAS_RESET_TOPIC")]
        topic: Option<String>,
    },
}

#[derive(Debug, Serialize)]
struct GroupRow {
    group: String,
    state: String,
    protocol_type: String,
    members: usize,
}

#[derive(Debug, Serialize)]
struct MemberRow {
    member_id: String,
    client_id: String,
    host: String,
    assignment: Vec<(String, Vec<i32>)>,
}

#[derive(Debug, Serialize)]
struct OffsetRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_end_offset: i64,
    lag: Option<i64>,
    member: Option<String>,
}

/// Runs `veritas groups`.
pub fn run(args: GroupsArgs) -> anyhow::Result<()> {
    let c = &args.client;
    match args.command {
        GroupsCommand::List => {
            let consumer: BaseConsumer = c.config().create()?;
            let list = consumer
                .fetch_group_list(None, TIMEOUT)
                .context("listing groups")?;
            let mut rows: Vec<GroupRow> = list
                .groups()
                .iter()
                .map(|g| GroupRow {
                    group: g.name().to_owned(),
                    state: g.state().to_owned(),
                    protocol_type: g.protocol_type().to_owned(),
                    members: g.members().len(),
                })
                .collect();
            rows.sort_by(|a, b| a.group.cmp(&b.group));
            if c.output == Output::Json {
                return print_json(&rows);
            }
            let mut t = table(["group", "state", "protocol-type", "members"]);
            for r in rows {
                t.add_row(vec![
                    r.group,
                    r.state,
                    r.protocol_type,
                    r.members.to_string(),
                ]);
            }
            emit(&t)?;
        }
        GroupsCommand::Describe { group } => describe(c, &group)?,
        GroupsCommand::ResetOffsets {
            group,
            to_earliest,
            to_latest,
            to_offset,
            topic,
        } => {
            let target = match (to_earliest, to_latest, to_offset) {
                (true, _, _) => Target::Earliest,
                (_, true, _) => Target::Latest,
                (_, _, Some(n)) => Target::Offset(n),
                _ => bail!("choose one of --to-earliest, --to-latest, --to-offset N"),
            };
            reset(c, &group, target, topic.as_deref())?;
        }
    }
    Ok(())
}

fn group_consumer(c: &ClientArgs, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(c.config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?)
}

/// Committed offsets of `group` on every partition of every (non-internal) topic, or of `only`.
fn committed(
    consumer: &BaseConsumer,
    only: Option<&str>,
) -> anyhow::Result<Vec<(String, i32, Option<i64>)>> {
    let md = consumer.fetch_metadata(only, TIMEOUT)?;
    let mut tpl = TopicPartitionList::new();
    for t in md
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__") && t.error().is_none())
    {
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    if tpl.count() == 0 {
        return Ok(Vec::new());
    }
    let got = consumer
        .committed_offsets(tpl, TIMEOUT)
        .context("fetching committed offsets")?;
    Ok(got
        .elements()
        .iter()
        .map(|e| {
            let off = match e.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            };
            (e.topic().to_owned(), e.partition(), off)
        })
        .collect())
}

fn decode_assignment(bytes: &[u8]) -> Vec<(String, Vec<i32>)> {
    let mut b = Bytes::copy_from_slice(bytes);
    if b.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    let _ = bytes::Buf::get_i16(&mut b);
    match ConsumerProtocolAssignment::decode(&mut b, version.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .map(|tp| (tp.topic.0.to_string(), tp.partitions))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn describe(c: &ClientArgs, group: &str) -> anyhow::Result<()> {
    let consumer = group_consumer(c, group)?;
    let list = consumer
        .fetch_group_list(Some(group), TIMEOUT)
        .context("describing group")?;
    let info = list
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .context("group not found")?;
    let members: Vec<MemberRow> = info
        .members()
        .iter()
        .map(|m| MemberRow {
            member_id: m.id().to_owned(),
            client_id: m.client_id().to_owned(),
            host: m.client_host().to_owned(),
            assignment: m.assignment().map(decode_assignment).unwrap_or_default(),
        })
        .collect();
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &members {
        for (t, ps) in &m.assignment {
            for p in ps {
                owner.insert((t.clone(), *p), m.client_id.clone());
            }
        }
    }
    let mut offsets = Vec::new();
    for (topic, partition, committed) in committed(&consumer, None)? {
        let assigned = owner.get(&(topic.clone(), partition)).cloned();
        if committed.is_none() && assigned.is_none() {
            continue;
        }
        let (_, high) = consumer.fetch_watermarks(&topic, partition, TIMEOUT)?;
        offsets.push(OffsetRow {
            lag: committed.map(|c| (high - c).max(0)),
            topic,
            partition,
            committed,
            log_end_offset: high,
            member: assigned,
        });
    }
    if c.output == Output::Json {
        return print_json(&serde_json::json!({
            "group": group,
            "state": info.state(),
            "protocol_type": info.protocol_type(),
            "protocol": info.protocol(),
            "members": members,
            "offsets": offsets,
            "total_lag": offsets.iter().filter_map(|o| o.lag).sum::<i64>(),
        }));
    }
    emit(format!("GROUP        {group}"))?;
    emit(format!("STATE        {}", info.state()))?;
    emit(format!(
        "PROTOCOL     {} / {}",
        info.protocol_type(),
        info.protocol()
    ))?;
    emit(format!("MEMBERS      {}", members.len()))?;
    emit(format!(
        "TOTAL-LAG    {}\n",
        offsets.iter().filter_map(|o| o.lag).sum::<i64>()
    ))?;
    let mut t = table(["member-id", "client-id", "host", "assignment"]);
    for m in &members {
        let a: Vec<String> = m
            .assignment
            .iter()
            .map(|(t, ps)| format!("{t}{ps:?}"))
            .collect();
        t.add_row(vec![
            m.member_id.clone(),
            m.client_id.clone(),
            m.host.clone(),
            a.join(" "),
        ]);
    }
    emit(format!(
        "{t}
"
    ))?;
    let mut t = table([
        "topic",
        "partition",
        "current-offset",
        "log-end-offset",
        "lag",
        "member",
    ]);
    for o in &offsets {
        t.add_row(vec![
            o.topic.clone(),
            o.partition.to_string(),
            o.committed.map_or("-".into(), |v| v.to_string()),
            o.log_end_offset.to_string(),
            o.lag.map_or("-".into(), |v| v.to_string()),
            o.member.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    emit(&t)?;
    Ok(())
}

enum Target {
    Earliest,
    Latest,
    Offset(i64),
}

fn reset(c: &ClientArgs, group: &str, target: Target, topic: Option<&str>) -> anyhow::Result<()> {
    let consumer = group_consumer(c, group)?;
    let list = consumer.fetch_group_list(Some(group), TIMEOUT)?;
    if let Some(g) = list.groups().iter().find(|g| g.name() == group) {
        if !g.members().is_empty() {
            bail!(
                "group '{group}' has {} active member(s) (state {}); stop its consumers first",
                g.members().len(),
                g.state()
            );
        }
    }
    let mut tpl = TopicPartitionList::new();
    let mut rows = Vec::new();
    for (t, p, committed) in committed(&consumer, topic)? {
        if topic.is_none() && committed.is_none() {
            continue; // only the topics the group consumes
        }
        let (low, high) = consumer.fetch_watermarks(&t, p, TIMEOUT)?;
        let new = match target {
            Target::Earliest => low,
            Target::Latest => high,
            Target::Offset(n) => n.clamp(low, high),
        };
        tpl.add_partition_offset(&t, p, Offset::Offset(new))?;
        rows.push((t, p, committed, new));
    }
    if tpl.count() == 0 {
        bail!(
            "group '{group}' has no committed offsets{}",
            topic.map(|t| format!(" on {t}")).unwrap_or_default()
        );
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .context("committing new offsets")?;
    if c.output == Output::Json {
        let v: Vec<_> = rows
            .iter()
            .map(|(t, p, old, new)| serde_json::json!({"topic": t, "partition": p, "previous": old, "new": new}))
            .collect();
        return print_json(&v);
    }
    let mut table = table(["topic", "partition", "previous-offset", "new-offset"]);
    for (t, p, old, new) in rows {
        table.add_row(vec![
            t,
            p.to_string(),
            old.map_or("-".into(), |v| v.to_string()),
            new.to_string(),
        ]);
    }
    emit(&table)?;
    Ok(())
}
