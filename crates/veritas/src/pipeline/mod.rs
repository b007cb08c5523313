//! The Kafka edges of Veritas: the transaction producer and the detector consumer. The
//! subcommands (`produce`, `detect`, `demo`) are thin wrappers around these, so the demo runs
//! exactly the code a user runs by hand, against the embedded broker or any Kafka.

pub mod detector;
pub mod producer;

/// Record header carrying the ground-truth label (`1` fraud, `0` legitimate). Never in the value:
/// the detector must not see it.
pub const LABEL_HEADER: &str = "veritas-label";
/// Record header carrying the fraud scenario of a fraudulent event.
pub const SCENARIO_HEADER: &str = "veritas-scenario";
/// Record header on dead-letter records: why the event was rejected.
pub const ERROR_HEADER: &str = "veritas-error";

/// The topics a pipeline uses, derived from the input topic's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Transactions in.
    pub input: String,
    /// Decisions out.
    pub decisions: String,
    /// Invalid events, with their original bytes.
    pub dlq: String,
    /// The detector group's state checkpoints (one per group: groups never share state).
    pub state: String,
    /// The detector group's merchant table checkpoints (one partition).
    pub table: String,
}

impl Topics {
    /// For input `bankaccount` and group `veritas-detector`: `bankaccount.decisions`,
    /// `bankaccount.dlq`, `bankaccount.veritas-detector.state` and
    /// `bankaccount.veritas-detector.table`.
    pub fn new(input: &str, group: &str) -> Topics {
        Topics {
            input: input.to_owned(),
            decisions: format!("{input}.decisions"),
            dlq: format!("{input}.dlq"),
            state: format!("{input}.{group}.state"),
            table: format!("{input}.{group}.table"),
        }
    }
}

/// Creates whichever of the pipeline's topics are missing: the input with `partitions`
/// partitions, the decisions, dead-letter and state topics with as many partitions as the
/// input has (the state topic must match it partition for partition), and the one-partition
/// merchant table topic. Both checkpoint topics are `cleanup.policy=delete` with no time
/// retention: the detector trims them itself, and compaction would break their restore.
/// Existing topics are left alone, except that a checkpoint topic with `compact` in its
/// policy (created by an earlier version) is altered to `delete`, and a state topic with
/// fewer partitions than the input is grown to match ([`grow_state_topic`]).
pub fn ensure_topics(
    client: &rdkafka::config::ClientConfig,
    topics: &Topics,
    partitions: i32,
) -> anyhow::Result<i32> {
    use anyhow::Context;
    use rdkafka::admin::{
        AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
    };
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::types::RDKafkaErrorCode;
    use std::time::Duration;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let meta: BaseConsumer = client.create()?;
    let count = |name: &str| -> anyhow::Result<Option<i32>> {
        let md = meta
            .fetch_metadata(Some(name), Duration::from_secs(15))
            .with_context(|| format!("metadata of {name}"))?;
        Ok(md
            .topics()
            .first()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as i32))
    };
    let create = |name: &str, n: i32, configs: &[(&str, &str)]| -> anyhow::Result<()> {
        let mut t = NewTopic::new(name, n, TopicReplication::Fixed(1));
        for (k, v) in configs {
            t = t.set(k, v);
        }
        let r = rt.block_on(admin.create_topics(
            [&t],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(15))),
        ))?;
        for x in r {
            match x {
                Ok(_) => tracing::info!(topic = name, partitions = n, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => anyhow::bail!("creating topic {t}: {e}"),
            }
        }
        Ok(())
    };
    // Asking for metadata may auto-create the input with the broker default; create it first.
    create(&topics.input, partitions, &[])?;
    let n = count(&topics.input)?
        .with_context(|| format!("topic {} is not available", topics.input))?;
    create(&topics.decisions, n, &[])?;
    create(&topics.dlq, n, &[])?;
    // Both checkpoint topics are trimmed by the detector (DeleteRecords), never by time, and
    // never compacted: every checkpoint marker has the same key, so compaction would drop
    // the markers that name snapshots (see `detector.rs`).
    let keep = [("cleanup.policy", "delete"), ("retention.ms", "-1")];
    create(&topics.state, n, &keep)?;
    create(&topics.table, 1, &keep)?;
    for name in [&topics.state, &topics.table] {
        let described = rt.block_on(admin.describe_configs(
            [&ResourceSpecifier::Topic(name)],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(15))),
        ))?;
        let compacted = described.iter().flatten().any(|r| {
            r.get("cleanup.policy")
                .and_then(|e| e.value.as_deref())
                .is_some_and(|v| v.contains("compact"))
        });
        if compacted {
            // Created by an earlier version as `compact,delete`.
            let mut alter = AlterConfig::new(ResourceSpecifier::Topic(name));
            for (k, v) in keep {
                alter = alter.set(k, v);
            }
            for r in rt.block_on(admin.alter_configs(
                [&alter],
                &AdminOptions::new().request_timeout(Some(Duration::from_secs(15))),
            ))? {
                r.map_err(|(_, e)| anyhow::anyhow!("altering the config of {name}: {e}"))?;
            }
            tracing::warn!(topic = %name, "checkpoint topic was compacted; set cleanup.policy=delete");
        }
    }
    grow_state_topic(client, topics, n)?;
    Ok(n)
}

/// Grows the state topic to `partitions` partitions if it has fewer (the input grew: its new
/// partitions start with no state, and state partition `p` stays input partition `p`'s).
pub fn grow_state_topic(
    client: &rdkafka::config::ClientConfig,
    topics: &Topics,
    partitions: i32,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::types::RDKafkaErrorCode;
    use std::time::Duration;

    let meta: BaseConsumer = client.create()?;
    let md = meta
        .fetch_metadata(Some(&topics.state), Duration::from_secs(15))
        .with_context(|| format!("metadata of {}", topics.state))?;
    let have = md.topics().first().map_or(0, |t| t.partitions().len()) as i32;
    if have >= partitions {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let grow = NewPartitions::new(&topics.state, partitions as usize);
    let r = rt.block_on(admin.create_partitions(
        [&grow],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(15))),
    ))?;
    for x in r {
        match x {
            Ok(_) => tracing::info!(
                topic = %topics.state,
                from = have,
                to = partitions,
                "grew the state topic to match the input"
            ),
            // Another instance grew it first.
            Err((_, RDKafkaErrorCode::InvalidPartitions)) => {}
            Err((t, e)) => anyhow::bail!("growing {t} to {partitions} partitions: {e}"),
        }
    }
    Ok(())
}

/// Whether an error a consumer's poll returned ends a read. librdkafka recovers by itself
/// from most errors it reports there (a connection dropped, "all brokers down" for a moment,
/// a request timed out; librdkafka 2.12 even reports "all brokers down" when it retires its
/// bootstrap connection while the learned one is still connecting), so those are logged and
/// reading goes on, bounded by the reader's own deadline. Fatal errors and those that waiting
/// does not cure (no such topic or partition, access refused) end it.
pub fn consumer_error_ends_read(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode as C;
    match e {
        KafkaError::MessageConsumption(code) => matches!(
            code,
            C::UnknownTopicOrPartition
                | C::UnknownPartition
                | C::UnknownTopic
                | C::TopicAuthorizationFailed
                | C::GroupAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::SaslAuthenticationFailed
                | C::Authentication
        ),
        KafkaError::PartitionEOF(_) => false,
        _ => true,
    }
}

/// Leaves the consumer group before `consumer` is dropped: unsubscribes, then polls (the
/// records it still returns are not processed) until the revoke that leaving raises has been
/// handled and nothing is assigned, or `within` has passed.
///
/// Dropping a subscribed consumer closes it, and librdkafka (2.12) can hang that close for
/// good when a rebalance's revoke reaches the application just as the close begins: the
/// un-assignment the revoke asks for waits on a group handle that has already terminated
/// (confluentinc/librdkafka#4884). Leaving first, while the handle is alive, answers every
/// revoke; the close that follows has nothing left to revoke. Returns whether the consumer
/// left in time. Not for static members (`group.instance.id`): unsubscribing sends the
/// LeaveGroup that a static member's restart is meant to avoid.
pub fn leave_group<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    within: std::time::Duration,
) -> bool {
    use rdkafka::consumer::Consumer;
    consumer.unsubscribe();
    let deadline = std::time::Instant::now() + within;
    // A revoke already on its way is handled by the poll that takes it from the queue: a
    // couple of quiet polls after the assignment is empty let it arrive.
    let mut quiet = 0;
    while std::time::Instant::now() < deadline {
        let _ = consumer.poll(std::time::Duration::from_millis(50));
        let assigned = consumer.assignment().map_or(0, |a| a.count());
        quiet = if assigned == 0 { quiet + 1 } else { 0 };
        if quiet >= 3 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{consumer_error_ends_read, ensure_topics, Topics};
    use rdkafka::admin::{
        AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication,
    };
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode as C;

    /// The checkpoint topics must never be compacted (their markers share one key): new ones
    /// are created `delete`, and one an earlier version created `compact,delete` is altered.
    /// Against the embedded broker, which compacts like Kafka.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checkpoint_topics_are_never_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = veritas_broker::BrokerConfig::new(dir.path());
        config.listen = "127.0.0.1:0".parse().unwrap();
        let broker = veritas_broker::Broker::start(config, &prometheus::Registry::new())
            .await
            .unwrap();
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("broker.address.family", "v4");
        let admin: AdminClient<DefaultClientContext> = client.create().unwrap();
        let topics = Topics::new("cards", "g");
        let old = NewTopic::new(&topics.state, 2, TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact,delete");
        for r in admin
            .create_topics([&old], &AdminOptions::new())
            .await
            .unwrap()
        {
            r.unwrap();
        }
        let c = client.clone();
        let t = topics.clone();
        let n = tokio::task::spawn_blocking(move || ensure_topics(&c, &t, 2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 2);
        for name in [&topics.state, &topics.table] {
            let described = admin
                .describe_configs([&ResourceSpecifier::Topic(name)], &AdminOptions::new())
                .await
                .unwrap();
            let resource = described.into_iter().next().unwrap().unwrap();
            let policy = resource.get("cleanup.policy").and_then(|e| e.value.clone());
            let retention = resource.get("retention.ms").and_then(|e| e.value.clone());
            assert_eq!(policy.as_deref(), Some("delete"), "{name}");
            assert_eq!(retention.as_deref(), Some("-1"), "{name}");
        }
        broker.shutdown().await.unwrap();
    }

    #[test]
    fn transient_consumer_errors_do_not_end_a_read() {
        for code in [
            C::AllBrokersDown,
            C::BrokerTransportFailure,
            C::RequestTimedOut,
        ] {
            assert!(!consumer_error_ends_read(&KafkaError::MessageConsumption(
                code
            )));
        }
        assert!(!consumer_error_ends_read(&KafkaError::PartitionEOF(0)));
        assert!(consumer_error_ends_read(&KafkaError::MessageConsumption(
            C::UnknownTopicOrPartition
        )));
        assert!(consumer_error_ends_read(&KafkaError::MessageConsumption(
            C::TopicAuthorizationFailed
        )));
        assert!(consumer_error_ends_read(
            &KafkaError::MessageConsumptionFatal(C::Fatal)
        ));
    }
}
