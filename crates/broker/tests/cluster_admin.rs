//! The admin APIs whose answer on one node without an authorizer is fixed by Kafka's own
//! behaviour, at every advertised version: DescribeLogDirs (the data directory, each
//! partition's size, the file system's space), ElectLeaders (ELECTION_NOT_NEEDED: the only
//! replica already leads) and the ACL APIs (SECURITY_DISABLED: no authorizer).

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
const SECURITY_DISABLED: i16 = 54;
const ELECTION_NOT_NEEDED: i16 = 84;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.into()))
}

fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let r = veritas_broker::api::supported(key).expect("advertised");
    r.min..=r.max
}

#[tokio::test]
async fn describe_log_dirs_reports_the_data_directory_and_partition_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    create_topic(&mut c, "sized", 2, &[]).await;
    create_topic(&mut c, "empty", 1, &[]).await;
    // 50 records into partition 1 of "sized".
    let records: Vec<_> = (0..50)
        .map(|i| plain_record(i, now_ms(), None, Some(Bytes::from(vec![b'x'; 100]))))
        .collect();
    let batch = encode_batch(&records, Compression::None);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("sized"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(1)
                .with_records(Some(batch.clone()))])]);
    assert_eq!(
        c.call(9, &req).await.responses[0].partition_responses[0].error_code,
        0
    );
    let data_dir = std::path::absolute(dir.path()).unwrap();

    for v in versions(ApiKey::DescribeLogDirs) {
        // Everything.
        let r = c
            .call(v, &DescribeLogDirsRequest::default().with_topics(None))
            .await;
        assert_eq!(r.error_code, 0, "v{v}");
        assert_eq!(r.results.len(), 1, "one log directory, v{v}");
        let d = &r.results[0];
        assert_eq!(d.error_code, 0);
        assert_eq!(d.log_dir.to_string(), data_dir.display().to_string());
        let size = |t: &str, p: i32| {
            d.topics
                .iter()
                .find(|x| x.name.0.as_str() == t)
                .and_then(|x| x.partitions.iter().find(|q| q.partition_index == p))
                .map(|q| (q.partition_size, q.offset_lag, q.is_future_key))
        };
        assert_eq!(
            size("sized", 1),
            Some((batch.len() as i64, 0, false)),
            "v{v}"
        );
        assert_eq!(size("sized", 0), Some((0, 0, false)), "v{v}");
        assert_eq!(size("empty", 0), Some((0, 0, false)), "v{v}");
        assert!(
            size("__consumer_offsets", 0).is_some(),
            "internal topic, v{v}"
        );
        if v >= 4 {
            assert!(d.total_bytes > 0 && d.usable_bytes > 0, "v{v}");
            assert!(d.usable_bytes <= d.total_bytes, "v{v}");
        }

        // Named partitions: the missing ones are left out, without an error.
        let r = c
            .call(
                v,
                &DescribeLogDirsRequest::default().with_topics(Some(vec![
                    DescribableLogDirTopic::default()
                        .with_topic(name("sized"))
                        .with_partitions(vec![1, 7]),
                    DescribableLogDirTopic::default()
                        .with_topic(name("missing"))
                        .with_partitions(vec![0]),
                ])),
            )
            .await;
        let d = &r.results[0];
        assert_eq!(d.topics.len(), 1, "v{v}");
        assert_eq!(d.topics[0].name.0.as_str(), "sized");
        let described: Vec<(i32, i64)> = d.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.partition_size))
            .collect();
        assert_eq!(described, vec![(1, batch.len() as i64)], "v{v}");

        // An empty list describes nothing but still names the directory.
        let r = c
            .call(
                v,
                &DescribeLogDirsRequest::default().with_topics(Some(vec![])),
            )
            .await;
        assert_eq!(r.results.len(), 1);
        assert!(r.results[0].topics.is_empty(), "v{v}");
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn elect_leaders_is_never_needed_on_one_node() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    create_topic(&mut c, "led", 2, &[]).await;
    for v in versions(ApiKey::ElectLeaders) {
        for election_type in [0i8, 1] {
            if v == 0 && election_type == 1 {
                continue; // v0 has no election type: always preferred
            }
            let r = c
                .call(
                    v,
                    &ElectLeadersRequest::default()
                        .with_election_type(election_type)
                        .with_timeout_ms(10_000)
                        .with_topic_partitions(Some(vec![
                            TopicPartitions::default()
                                .with_topic(name("led"))
                                .with_partitions(vec![0, 1, 5]),
                            TopicPartitions::default()
                                .with_topic(name("missing"))
                                .with_partitions(vec![0]),
                        ])),
                )
                .await;
            assert_eq!(r.error_code, 0, "v{v}");
            let codes: Vec<(String, i32, i16)> = r
                .replica_election_results
                .iter()
                .flat_map(|t| {
                    t.partition_result
                        .iter()
                        .map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code))
                })
                .collect();
            assert_eq!(
                codes,
                vec![
                    ("led".into(), 0, ELECTION_NOT_NEEDED),
                    ("led".into(), 1, ELECTION_NOT_NEEDED),
                    ("led".into(), 5, UNKNOWN_TOPIC_OR_PARTITION),
                    ("missing".into(), 0, UNKNOWN_TOPIC_OR_PARTITION),
                ],
                "v{v} type {election_type}"
            );
        }
        // All partitions: nothing needed an election, so nothing is listed.
        let r = c
            .call(
                v,
                &ElectLeadersRequest::default()
                    .with_timeout_ms(10_000)
                    .with_topic_partitions(None),
            )
            .await;
        assert_eq!(r.error_code, 0);
        assert!(r.replica_election_results.is_empty(), "v{v}");
        if v >= 1 {
            let r = c
                .call(
                    v,
                    &ElectLeadersRequest::default()
                        .with_election_type(7)
                        .with_timeout_ms(10_000)
                        .with_topic_partitions(None),
                )
                .await;
            assert_eq!(r.error_code, INVALID_REQUEST, "v{v}");
        }
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn acl_apis_say_security_is_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path())).await;
    let mut c = RawClient::connect(&broker).await;
    let s = |v: &str| StrBytes::from_string(v.to_owned());
    for v in versions(ApiKey::DescribeAcls) {
        let r = c
            .call(
                v,
                &DescribeAclsRequest::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            )
            .await;
        assert_eq!(r.error_code, SECURITY_DISABLED, "DescribeAcls v{v}");
        assert!(r.resources.is_empty());
        assert!(r.error_message.is_some());
    }
    for v in versions(ApiKey::CreateAcls) {
        let acl = AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(s("payments"))
            .with_resource_pattern_type(3)
            .with_principal(s("User:alice"))
            .with_host(s("*"))
            .with_operation(3)
            .with_permission_type(3);
        let r = c
            .call(
                v,
                &CreateAclsRequest::default().with_creations(vec![acl.clone(), acl]),
            )
            .await;
        let codes: Vec<i16> = r.results.iter().map(|x| x.error_code).collect();
        assert_eq!(codes, vec![SECURITY_DISABLED; 2], "CreateAcls v{v}");
    }
    for v in versions(ApiKey::DeleteAcls) {
        let r = c
            .call(
                v,
                &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1)]),
            )
            .await;
        assert_eq!(r.filter_results.len(), 1);
        assert_eq!(
            r.filter_results[0].error_code, SECURITY_DISABLED,
            "DeleteAcls v{v}"
        );
        assert!(r.filter_results[0].matching_acls.is_empty());
    }
    broker.shutdown().await.unwrap();
}
