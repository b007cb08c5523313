//! The internal topic `__consumer_offsets` is the group coordinator's alone: clients cannot
//! write to it, trim it, reconfigure, grow or delete it, each refused with Kafka's error code;
//! and deleting an ordinary topic deletes every group's committed offsets of it.

mod common;

use common::*;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig as IncrementalConfig,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

const OFFSETS: &str = "__consumer_offsets";
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const INVALID_REQUEST: i16 = 42;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn name(v: &str) -> TopicName {
    TopicName(s(v))
}

fn batch() -> bytes::Bytes {
    let record = plain_record(
        0,
        now_ms(),
        Some(bytes::Bytes::from_static(b"not a group key")),
        Some(bytes::Bytes::from_static(b"garbage")),
    );
    encode_batch(&[record], Compression::None)
}

#[tokio::test]
async fn clients_cannot_touch_the_offsets_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let offsets_log = broker
        .shared()
        .cluster
        .partition(OFFSETS, 0)
        .expect("the coordinator creates its topic");
    let end = offsets_log.log.log_end_offset();
    let mut c = RawClient::connect(&broker).await;

    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(OFFSETS))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch()))])]);
    for version in [3, 9] {
        let r = c.call(version, &produce).await;
        assert_eq!(
            r.responses[0].partition_responses[0].error_code, INVALID_TOPIC_EXCEPTION,
            "Produce v{version}"
        );
    }

    let r = c
        .call(
            2,
            &DeleteRecordsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(name(OFFSETS))
                    .with_partitions(vec![DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(-1)])]),
        )
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        INVALID_TOPIC_EXCEPTION
    );

    // The internal topic is the coordinator's; broker configs are `veritas broker` flags.
    let refusals = [
        (2, OFFSETS, TOPIC_AUTHORIZATION_FAILED),
        (4, "1", INVALID_REQUEST),
    ];
    for (validate_only, (resource_type, resource, expected)) in [true, false]
        .into_iter()
        .flat_map(|v| refusals.map(|r| (v, r)))
    {
        let r = c
            .call(
                2,
                &AlterConfigsRequest::default()
                    .with_validate_only(validate_only)
                    .with_resources(vec![AlterConfigsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(s(resource))
                        .with_configs(vec![AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_value(Some(s("1")))])]),
            )
            .await;
        assert_eq!(r.responses[0].error_code, expected, "{resource}");
        let r = c
            .call(
                1,
                &IncrementalAlterConfigsRequest::default()
                    .with_validate_only(validate_only)
                    .with_resources(vec![IncrementalResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(s(resource))
                        .with_configs(vec![IncrementalConfig::default()
                            .with_name(s("cleanup.policy"))
                            .with_config_operation(0)
                            .with_value(Some(s("delete")))])]),
            )
            .await;
        assert_eq!(r.responses[0].error_code, expected, "{resource}");
    }

    let r = c
        .call(
            3,
            &CreatePartitionsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(name(OFFSETS))
                    .with_count(4)]),
        )
        .await;
    assert_eq!(r.results[0].error_code, TOPIC_AUTHORIZATION_FAILED);

    let r = c
        .call(
            4,
            &DeleteTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topic_names(vec![name(OFFSETS)]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, TOPIC_AUTHORIZATION_FAILED);

    // Nothing changed: same log, same config, one partition.
    let topic = broker.shared().cluster.topic(OFFSETS).unwrap();
    assert_eq!(topic.partition_count(), 1);
    assert_eq!(offsets_log.log.log_end_offset(), end);
    assert_eq!(offsets_log.log.log_start_offset(), 0);
    let config = format!("{:?}", topic.config());
    assert!(!config.contains("retention"), "{config}");
    broker.shutdown().await.unwrap();
}

async fn commit(c: &mut RawClient, group: &str, topic: &str, offset: i64) {
    let r = c
        .call(
            8,
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)])]),
        )
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
}

async fn committed(c: &mut RawClient, group: &str, topic: &str) -> i64 {
    let r = c
        .call(
            7,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(name(topic))
                    .with_partition_indexes(vec![0])])),
        )
        .await;
    r.topics[0].partitions[0].committed_offset
}

async fn create(c: &mut RawClient, topic: &str) {
    let r = c
        .call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);
}

#[tokio::test]
async fn deleting_a_topic_deletes_its_committed_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    create(&mut c, "doomed").await;
    create(&mut c, "kept").await;
    for group in ["g1", "g2"] {
        commit(&mut c, group, "doomed", 42).await;
        commit(&mut c, group, "kept", 7).await;
    }
    assert_eq!(committed(&mut c, "g1", "doomed").await, 42);

    let r = c
        .call(
            6,
            &DeleteTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(name("doomed")))]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    create(&mut c, "doomed").await;
    for group in ["g1", "g2"] {
        assert_eq!(committed(&mut c, group, "doomed").await, -1, "{group}");
        assert_eq!(committed(&mut c, group, "kept").await, 7, "{group}");
    }

    // Durably: after a restart the deleted topic's offsets stay gone.
    broker.shutdown().await.unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    assert_eq!(committed(&mut c, "g1", "doomed").await, -1);
    assert_eq!(committed(&mut c, "g1", "kept").await, 7);
    broker.shutdown().await.unwrap();
}
