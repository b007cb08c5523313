//! DescribeLogDirs (key 35), versions 1–4.
//!
//! The broker has one log directory, its data directory. The answer lists it with the size of
//! each partition's log (what admin tools show as a topic's size on disk), offset lag 0 and no
//! future replicas (there is no replica movement on one node), and, from v4, the file
//! system's total and usable bytes (-1 where they cannot be read). As in Kafka:
//!
//! * `topics: null` describes every partition, the internal `__consumer_offsets` included;
//! * named partitions that do not exist are left out (no error);
//! * an empty list describes nothing, but the directory is still listed.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::VersionRange;

use super::{sb, Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };

/// Handles DescribeLogDirs.
pub async fn handle(ctx: &Ctx<'_>, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let cluster = &ctx.shared.cluster;
    // (topic, partitions) pairs to describe.
    let wanted: Vec<(TopicName, Vec<i32>)> = match req.topics {
        None => cluster
            .topics()
            .iter()
            .map(|t| {
                let name = TopicName(sb(t.name.to_string()));
                (name, t.partitions().iter().map(|p| p.index).collect())
            })
            .collect(),
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic, t.partitions))
            .collect(),
    };
    let mut topics = Vec::new();
    for (name, indexes) in wanted {
        let Some(topic) = cluster.topic(&name) else {
            continue;
        };
        let partitions: Vec<DescribeLogDirsPartition> = indexes
            .iter()
            .filter_map(|&i| topic.partition(i))
            .map(|p| {
                DescribeLogDirsPartition::default()
                    .with_partition_index(p.index)
                    .with_partition_size(i64::try_from(p.log.size_bytes()).unwrap_or(i64::MAX))
                    .with_offset_lag(0)
                    .with_is_future_key(false)
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(name)
                    .with_partitions(partitions),
            );
        }
    }
    let dir = &ctx.shared.config.data_dir;
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
    let (total, usable) = space(dir).unwrap_or((-1, -1));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(sb(absolute.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// The file system's total and available bytes under `dir`.
fn space(dir: &std::path::Path) -> Option<(i64, i64)> {
    let s = rustix::fs::statvfs(dir).ok()?;
    let block = s.f_frsize.max(1);
    let bytes = |blocks: u64| i64::try_from(blocks.saturating_mul(block)).ok();
    Some((bytes(s.f_blocks)?, bytes(s.f_bavail)?))
}

impl Outcome for DescribeLogDirsResponse {
    fn error_code(&self) -> i16 {
        if self.error_code != 0 {
            return self.error_code;
        }
        super::first_error(self.results.iter().map(|r| r.error_code))
    }
}
