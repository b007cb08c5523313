//! Shared test harness: an in-process broker on an ephemeral port, rdkafka clients, a raw
//! protocol client, and condition waits with generous deadlines (never fixed sleeps).

#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rdkafka::config::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use veritas_broker::{Broker, BrokerConfig};

/// Generous deadline for anything asynchronous in tests.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The next record `consumer` has within `wait`, if any. librdkafka reports errors it
/// recovers from by itself through the same poll (a dropped connection; "all brokers down"
/// for a moment while librdkafka 2.12 retires its bootstrap connection before the broker's own
/// is up): those are printed and skipped, and the caller's deadline bounds the wait. A fatal
/// error fails the test.
pub fn next_record<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    wait: Duration,
) -> Option<rdkafka::message::BorrowedMessage<'_>> {
    match consumer.poll(wait)? {
        Ok(m) => Some(m),
        Err(e @ rdkafka::error::KafkaError::MessageConsumption(_)) => {
            eprintln!("consumer error (librdkafka recovers): {e}");
            None
        }
        Err(e) => panic!("consumer error: {e}"),
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VERITAS_TEST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Wall-clock milliseconds. Records written by tests carry recent timestamps: the default
/// `retention.ms` (seven days) would otherwise delete them under the test's feet, since
/// [`config`] runs retention every 50 ms.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(d.as_millis()).expect("millis fit in i64")
}

/// A broker config for tests: ephemeral port, given data dir.
pub fn config(dir: &Path) -> BrokerConfig {
    let mut c = BrokerConfig::new(dir);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.maintenance_interval = Duration::from_millis(50);
    c
}

pub async fn start(c: BrokerConfig) -> Broker {
    init_tracing();
    Broker::start(c, &prometheus::Registry::new())
        .await
        .expect("broker starts")
}

pub fn client_config(broker: &Broker) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker.bootstrap_servers())
        .set("broker.address.family", "v4")
        .set("message.timeout.ms", "30000")
        .set("socket.timeout.ms", "30000");
    c
}

/// Polls `check` until it yields `Some`, or panics after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > DEADLINE {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A bare Kafka protocol client over one TCP connection.
pub struct RawClient {
    pub stream: TcpStream,
    correlation: i32,
}

impl RawClient {
    pub async fn connect(broker: &Broker) -> RawClient {
        let stream = TcpStream::connect(broker.local_addr())
            .await
            .expect("connect");
        RawClient {
            stream,
            correlation: 0,
        }
    }

    /// Sends one request and decodes its response.
    pub async fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        self.send(version, req).await;
        let (_header, mut body) = self
            .receive(R::Response::header_version(version))
            .await
            .expect("response");
        R::Response::decode(&mut body, version).expect("decodes")
    }

    pub async fn send<R: Request>(&mut self, version: i16, req: &R) {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("raw-test")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version)).unwrap();
        req.encode(&mut buf, version).unwrap();
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&buf).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads one response frame; `None` if the connection was closed.
    pub async fn receive(&mut self, header_version: i16) -> Option<(ResponseHeader, Bytes)> {
        let mut len = [0u8; 4];
        tokio::time::timeout(DEADLINE, self.stream.read_exact(&mut len))
            .await
            .ok()?
            .ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        let mut body = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut body, header_version).ok()?;
        Some((header, body))
    }

    /// True once the broker has closed this connection.
    pub async fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(DEADLINE, self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

pub fn api_versions_header_version() -> i16 {
    ApiKey::ApiVersions.response_header_version(0)
}

pub fn get_i16(b: &mut Bytes) -> i16 {
    b.get_i16()
}

/// A record for [`encode_batch`]: no producer (idempotence off), CreateTime `timestamp`, at
/// offset `offset` of its batch, no headers.
pub fn plain_record(
    offset: i64,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
) -> kafka_protocol::records::Record {
    kafka_protocol::records::Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset,
        // Without a producer id the batch's base sequence is -1; kafka-protocol keeps one
        // batch while offset - sequence stays the same.
        sequence: offset as i32 - 1,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// `records` as v2 record batches (one while their offsets and sequences run together),
/// encoded by kafka-protocol with `compression`, as a client would send them.
pub fn encode_batch(
    records: &[kafka_protocol::records::Record],
    compression: kafka_protocol::records::Compression,
) -> Bytes {
    let mut buf = BytesMut::new();
    kafka_protocol::records::RecordBatchEncoder::encode(
        &mut buf,
        records,
        &kafka_protocol::records::RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("test records encode");
    buf.freeze()
}

/// Creates `topic` with `partitions` partitions and the given topic configs through
/// CreateTopics v7, failing the test unless it was created.
pub async fn create_topic(
    c: &mut RawClient,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string((*k).to_owned()))
                .with_value(Some(StrBytes::from_string((*v).to_owned())))
        })
        .collect();
    let r = c
        .call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(configs)]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0, "create {topic}");
}
