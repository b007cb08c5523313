//! Every advertised version of every API gets an answer: a handler that sets a field its
//! version cannot carry would otherwise close the client's connection. Realistic requests
//! (naming a real topic and partition) exercise the per-partition fields.

mod common;

use common::*;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.into()))
}

#[tokio::test]
async fn every_advertised_version_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    let created = c
        .call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name("v"))
                .with_num_partitions(2)
                .with_replication_factor(1)]),
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    let supported = veritas_broker::api::SUPPORTED;
    let range = |key: ApiKey| {
        supported
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, r)| *r)
            .unwrap()
    };

    for v in range(ApiKey::Metadata).min..=range(ApiKey::Metadata).max {
        let t = MetadataRequestTopic::default().with_name(Some(name("v")));
        let r = c
            .call(v, &MetadataRequest::default().with_topics(Some(vec![t])))
            .await;
        assert_eq!(r.topics[0].partitions.len(), 2, "Metadata v{v}");
    }
    for v in range(ApiKey::ListOffsets).min..=range(ApiKey::ListOffsets).max {
        if veritas_broker::api::legacy::serves(ApiKey::ListOffsets, v) {
            continue; // the legacy versions have their own tests (legacy.rs)
        }
        let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("v"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(1)
                .with_timestamp(-2)])]);
        let r = c.call(v, &req).await;
        assert_eq!(r.topics[0].partitions[0].error_code, 0, "ListOffsets v{v}");
    }
    for v in range(ApiKey::Fetch).min..=range(ApiKey::Fetch).max {
        if veritas_broker::api::legacy::serves(ApiKey::Fetch, v) {
            continue; // the legacy versions have their own tests (legacy.rs)
        }
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name("v"))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let r = c.call(v, &req).await;
        assert_eq!(r.responses[0].partitions[0].error_code, 0, "Fetch v{v}");
    }
    for v in range(ApiKey::OffsetForLeaderEpoch).min..=range(ApiKey::OffsetForLeaderEpoch).max {
        let req = OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(name("v"))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_leader_epoch(0)]),
        ]);
        let r = c.call(v, &req).await;
        assert_eq!(
            r.topics[0].partitions[0].error_code, 0,
            "OffsetForLeaderEpoch v{v}"
        );
    }
    for v in range(ApiKey::DescribeConfigs).min..=range(ApiKey::DescribeConfigs).max {
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(v >= 1)
            .with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("v")),
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_static_str("0")),
            ]);
        let r = c.call(v, &req).await;
        assert_eq!(r.results.len(), 2, "DescribeConfigs v{v}");
        assert!(
            r.results
                .iter()
                .all(|x| x.error_code == 0 && !x.configs.is_empty()),
            "DescribeConfigs v{v}"
        );
    }
    for v in range(ApiKey::DescribeCluster).min..=range(ApiKey::DescribeCluster).max {
        let r = c
            .call(v, &DescribeClusterRequest::default().with_endpoint_type(1))
            .await;
        assert_eq!(
            (r.error_code, r.brokers.len()),
            (0, 1),
            "DescribeCluster v{v}"
        );
    }
    for v in range(ApiKey::InitProducerId).min..=range(ApiKey::InitProducerId).max {
        let r = c
            .call(
                v,
                &InitProducerIdRequest::default().with_transactional_id(None),
            )
            .await;
        assert_eq!(r.error_code, 0, "InitProducerId v{v}");
    }
    for v in range(ApiKey::CreateTopics).min..=range(ApiKey::CreateTopics).max {
        let t = CreatableTopic::default()
            .with_name(name(&format!("ct{v}")))
            .with_num_partitions(1)
            .with_replication_factor(1);
        let r = c
            .call(v, &CreateTopicsRequest::default().with_topics(vec![t]))
            .await;
        assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}");
    }
    for v in range(ApiKey::DeleteTopics).min..=range(ApiKey::DeleteTopics).max {
        let doomed = format!("ct{}", v + 1); // CreateTopics made ct2..ct7 above
        let req = if v >= 6 {
            DeleteTopicsRequest::default()
                .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(name(&doomed)))])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name(&doomed)])
        };
        let r = c.call(v, &req).await;
        assert_eq!(r.responses[0].error_code, 0, "DeleteTopics v{v}");
    }
    broker.shutdown().await.unwrap();
}
