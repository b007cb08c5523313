//! The group coordinator: Kafka's classic consumer-group protocol and durable committed offsets.
//!
//! This broker coordinates every group (FindCoordinator always names it). The APIs in
//! [`crate::api`] (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
//! ListGroups, DescribeGroups, DeleteGroups, OffsetDelete) decode requests and call the
//! [`GroupCoordinator`]; everything here follows Apache Kafka's `GroupCoordinator` /
//! `GroupMetadataManager` so that clients behave exactly as they do against Kafka. The KIP-848
//! protocol (ConsumerGroupHeartbeat, `group.protocol=consumer`) is not implemented and not
//! advertised; clients use the classic protocol, their default.
//!
//! # State machine (per group, [`state`])
//!
//! ```text
//!            first JoinGroup                      all members joined, or the
//!   Empty ──────────────────▶ PreparingRebalance ── rebalance timeout ──▶ CompletingRebalance
//!     ▲  (waits group.initial.       ▲   │ no member left                   │ leader's SyncGroup
//!     │   rebalance.delay.ms,        │   ▼                                  ▼ (group persisted)
//!     │   extended per new member)   │  Empty ◀── last member leaves ──── Stable
//!     │                              └── join/leave/session expiry/ ───────┘
//!     │                                  leader rejoin/sync timeout
//!     └── DeleteGroups, or offsets expired ──▶ Dead (removed)
//! ```
//!
//! * **Joining** (KIP-394): a JoinGroup v4+ from a new dynamic member gets MEMBER_ID_REQUIRED
//!   with a generated id (`client.id-uuid`), which is *pending* until it rejoins with it (or
//!   its session timeout passes). A rebalance completes when every member and every pending id
//!   has joined — so ten members joining at once converge in one generation — or when the
//!   rebalance timeout (the largest of the members') passes; dynamic members that did not
//!   rejoin are dropped then. The protocol is chosen by Kafka's vote among the protocols every
//!   member supports; the leader is the first member, or any rejoined member if it did not
//!   rejoin. The first rebalance of an empty group waits `initial_rebalance_delay` (Kafka's
//!   `group.initial.rebalance.delay.ms`, default 3 s), again each time a member joined in the
//!   meantime, up to the rebalance timeout.
//! * **Syncing**: followers' SyncGroups wait until the leader's arrives with the assignment;
//!   members it leaves out get an empty one. Members that do not sync within the rebalance
//!   timeout are removed and a new rebalance starts.
//! * **Liveness**: each member has a session deadline, reset by heartbeats, commits and
//!   answered joins/syncs. A member waiting in a JoinGroup or SyncGroup counts as alive (as in
//!   Kafka); a *new* member waiting in its first JoinGroup is dropped after five minutes.
//!   Heartbeats answer REBALANCE_IN_PROGRESS during a rebalance, which makes members rejoin.
//! * **Static membership** (KIP-345): a member with a `group.instance.id` that rejoins without
//!   a member id replaces its previous incarnation, which is fenced (FENCED_INSTANCE_ID on its
//!   parked requests and on anything it sends later). In a Stable group whose protocol does not
//!   change, the new member keeps the old assignment and the group does not rebalance (same
//!   generation); a JoinGroup v9+ leader is told `skip_assignment` (KIP-814). Static members are
//!   not dropped when a rebalance times out, only when their session expires.
//! * Limits as Kafka: session timeouts outside `[min_session_timeout, max_session_timeout]`
//!   get INVALID_SESSION_TIMEOUT; a group of `max_size` members refuses more with
//!   GROUP_MAX_SIZE_REACHED.
//!
//! Long polls never block anything else: a JoinGroup or SyncGroup that must wait parks a
//! `oneshot` sender in its member and awaits the receiver with no lock held; whoever moves the
//! group on (another request, or the timer) answers through it. The group's mutex is a
//! `parking_lot` mutex held only for the synchronous transition. Lock order: group → group map,
//! group → offset store; the store's lock is innermost. At shutdown parked requests are
//! answered NOT_COORDINATOR.
//!
//! # Timers (`timer.rs`)
//!
//! One background task serves every deadline from a min-heap of `(instant, group)` wake-ups
//! (each group queues only its earliest deadline; heartbeats queue nothing) and sleeps until
//! the next one. The same task runs housekeeping off the async threads once a second: offset
//! expiry (every `offsets_retention_check_interval`) and the log checkpoint below.
//!
//! # Persistence ([`store`], `codec.rs`)
//!
//! Committed offsets and group metadata live in the internal topic `__consumer_offsets`
//! (flagged internal, `cleanup.policy=compact` so time retention never deletes live offsets).
//! It has **one partition**: Kafka's 50 partitions spread coordinator load and leadership over
//! brokers, which a single node does not have; one partition gives one total order of group
//! events to replay and one checkpoint, and concurrent commits share one fsync (group commit)
//! instead of one per partition. Should the topic have more partitions, only partition 0 is
//! used. Records use Kafka's own key/value schemas (offset keys v1, group keys v2, versioned
//! values; tombstones delete), so the format is documented and evolvable.
//!
//! * **Write path**: an OffsetCommit is validated under the group's lock, appended with
//!   `Log::append` and applied to the in-memory image under the store's lock (so log order is
//!   image order), then — lock released — fsynced if the flush policy asks (acks=all on one
//!   node: in the OS before the answer, on disk as the topic's policy says), then answered.
//!   The group's metadata (protocol type, generation, protocol, leader, state timestamp) is
//!   written when the leader's assignment arrives and when the group becomes empty.
//! * **Startup**: the partition is replayed from its log start (after a crash the log's own
//!   recovery has already cut it to a valid prefix). Groups come back *Empty*, keeping
//!   generation and protocol type; a group that was active is recorded as having become empty
//!   at startup (generation + 1, as Kafka's would after its members' sessions expire).
//!   Members' heartbeats and commits then get UNKNOWN_MEMBER_ID and they rejoin; their
//!   committed offsets are where they resume.
//! * **Checkpoint** (the log's compaction): once the log has grown since the last checkpoint
//!   by `offsets_checkpoint_bytes` and by at least the live state's size, the live state is
//!   appended afresh (starting a new segment), the log is fsynced, and the log start moves to
//!   the checkpoint's first record, deleting the older segments. It is crash-safe at every
//!   step (see [`store::OffsetStore::checkpoint`]) and costs at most one rewritten byte per
//!   appended byte.
//! * **Retention** (KIP-211, Kafka's `offsets.retention.minutes`, 7 days): offsets of a group
//!   with a protocol type expire 7 days after the group became empty; offsets of a simple
//!   group (`assign()` + commits, no protocol type) 7 days after their commit; a Stable
//!   consumer group's offsets of topics no member subscribes to, 7 days after their commit.
//!   Expired offsets get tombstones; an empty group left without offsets is deleted.

mod codec;
mod protocol;
pub mod state;
pub mod store;
mod timer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError as E;
use parking_lot::{Mutex, RwLock};
use prometheus::IntGauge;
use tokio::sync::watch;

pub use codec::{CodecError, GroupValue, OffsetValue};
pub use protocol::CONSUMER_PROTOCOL_TYPE;
pub use state::{
    GroupDescription, GroupPhase, JoinMember, JoinOutcome, JoinParams, LeavingMember,
    MemberDescription, Reply, SyncOutcome, SyncParams,
};
pub use store::{CheckpointOutcome, StoreError};

use crate::cluster::{now_ms, Cluster, ClusterError};
use crate::config::TopicConfig;
use state::{Env, GroupState};
use store::{Change, Expiry, OffsetStore};
use timer::Timers;

/// Name of the internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Partitions of [`OFFSETS_TOPIC`] when this broker creates it (see the module docs).
pub const OFFSETS_PARTITIONS: i32 = 1;
/// How often the background task checks whether a checkpoint is due.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(1);

/// Group coordinator settings, named after Kafka's broker configs; `Default` gives Kafka's
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms` (3 s): how long the first rebalance of an empty group
    /// waits for more members.
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms` (6 s).
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms` (30 min).
    pub max_session_timeout: Duration,
    /// `group.max.size` (unbounded).
    pub max_size: usize,
    /// `offsets.retention.minutes` (7 days).
    pub offsets_retention: Duration,
    /// `offsets.retention.check.interval.ms` (10 min).
    pub offsets_retention_check_interval: Duration,
    /// `offset.metadata.max.bytes` (4096): longer commit metadata gets
    /// OFFSET_METADATA_TOO_LARGE.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.topic.segment.bytes` (100 MiB), used when the topic is created.
    pub offsets_segment_bytes: u64,
    /// Growth of the offsets log that triggers a checkpoint (16 MiB; Veritas-specific, in
    /// place of Kafka's log cleaner).
    pub offsets_checkpoint_bytes: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(3000),
            min_session_timeout: Duration::from_millis(6000),
            max_session_timeout: Duration::from_millis(1_800_000),
            max_size: i32::MAX as usize,
            offsets_retention: Duration::from_secs(7 * 24 * 60 * 60),
            offsets_retention_check_interval: Duration::from_millis(600_000),
            offset_metadata_max_bytes: 4096,
            offsets_segment_bytes: 100 * 1024 * 1024,
            offsets_checkpoint_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Why the coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// The offsets topic could not be created or opened.
    #[error("offsets topic: {0}")]
    Cluster(#[from] ClusterError),
    /// The offsets log could not be replayed or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The offsets topic exists without a partition 0.
    #[error("topic {OFFSETS_TOPIC} has no partition 0")]
    MissingPartition,
}

/// An OffsetCommit, after the topics and partitions were checked.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// Group.
    pub group_id: String,
    /// Member id (empty for simple commits).
    pub member_id: String,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// Generation (-1 for simple commits).
    pub generation: i32,
    /// What to commit: topic, partition, value.
    pub offsets: Vec<(String, i32, OffsetValue)>,
    /// The error for a generation ≥ 0 when the group does not exist: ILLEGAL_GENERATION
    /// before OffsetCommit v9, GROUP_ID_NOT_FOUND from v9.
    pub unknown_group_error: i16,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type (empty for none).
    pub protocol_type: String,
    /// State.
    pub phase: GroupPhase,
}

/// A committed offset as OffsetFetch reports it (`None`: nothing committed).
pub type FetchedOffset = (i32, Option<OffsetValue>);

struct Group {
    id: String,
    state: Mutex<GroupState>,
}

struct Inner {
    config: GroupConfig,
    groups: RwLock<HashMap<String, Arc<Group>>>,
    store: Arc<OffsetStore>,
    timers: Timers,
    gauge: IntGauge,
}

/// The coordinator of every group. Cheap to clone (a handle).
#[derive(Clone)]
pub struct GroupCoordinator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("groups", &self.group_count())
            .finish()
    }
}

/// The running background task (timers and housekeeping); stop it before closing the logs.
#[derive(Debug)]
pub struct CoordinatorTask {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl CoordinatorTask {
    /// Stops the task and waits for it (including housekeeping in progress) to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.handle.await {
            tracing::error!(error = %e, "group coordinator task failed");
        }
    }
}

/// Waits for a parked request's answer, or for shutdown.
async fn wait_for<T>(
    reply: Reply<T>,
    mut shutdown: watch::Receiver<bool>,
    on_shutdown: impl FnOnce() -> T,
    on_dropped: impl FnOnce() -> T,
) -> T {
    match reply {
        Reply::Now(t) => t,
        Reply::Wait(rx) => {
            if *shutdown.borrow_and_update() {
                return on_shutdown();
            }
            tokio::select! {
                answer = rx => answer.unwrap_or_else(|_| on_dropped()),
                _ = shutdown.changed() => on_shutdown(),
            }
        }
    }
}

fn join_error(code: i16, member_id: &str) -> JoinOutcome {
    JoinOutcome {
        error: code,
        generation: -1,
        member_id: member_id.to_owned(),
        ..JoinOutcome::default()
    }
}

fn sync_error(code: i16) -> SyncOutcome {
    SyncOutcome {
        error: code,
        ..SyncOutcome::default()
    }
}

impl GroupCoordinator {
    /// Opens (creating it if needed) the offsets topic in `cluster`, replays it and restores
    /// every group it names, Empty. Blocking; call it off the async threads.
    pub fn open(
        cluster: &Cluster,
        config: GroupConfig,
        gauge: IntGauge,
    ) -> Result<GroupCoordinator, GroupError> {
        let topic = match cluster.topic(OFFSETS_TOPIC) {
            Some(t) => t,
            None => {
                let segment = config
                    .offsets_segment_bytes
                    .clamp(14, i32::MAX as u64)
                    .to_string();
                let topic_config = TopicConfig::from_pairs([
                    ("cleanup.policy", Some("compact")),
                    ("segment.bytes", Some(segment.as_str())),
                ])
                .map_err(ClusterError::from)?;
                tracing::info!(
                    topic = OFFSETS_TOPIC,
                    partitions = OFFSETS_PARTITIONS,
                    "creating the offsets topic"
                );
                cluster.create_topic(
                    OFFSETS_TOPIC,
                    OFFSETS_PARTITIONS,
                    1,
                    topic_config,
                    true,
                    false,
                )?
            }
        };
        if !topic.internal {
            tracing::warn!(
                topic = OFFSETS_TOPIC,
                "the offsets topic exists but is not flagged internal"
            );
        }
        if topic.partition_count() > 1 {
            tracing::warn!(
                topic = OFFSETS_TOPIC,
                partitions = topic.partition_count(),
                "only partition 0 of the offsets topic is used"
            );
        }
        let partition = topic.partition(0).ok_or(GroupError::MissingPartition)?;
        let store = OffsetStore::open(partition, config.offsets_checkpoint_bytes)?;
        let now = now_ms();
        let mut groups = HashMap::new();
        let mut emptied = Vec::new();
        for (id, meta) in store.groups() {
            let state = GroupState::restored(meta.as_ref(), now);
            if meta.as_ref().is_some_and(|m| m.protocol.is_some()) {
                emptied.push(Change::Group {
                    group: id.clone(),
                    value: Some(state.metadata_record(now)),
                });
            }
            groups.insert(
                id.clone(),
                Arc::new(Group {
                    id,
                    state: Mutex::new(state),
                }),
            );
        }
        if !emptied.is_empty() {
            tracing::info!(
                groups = emptied.len(),
                "groups active before the restart are empty now; members will rejoin"
            );
            store.append(emptied, now)?;
        }
        gauge.set(groups.len() as i64);
        Ok(GroupCoordinator {
            inner: Arc::new(Inner {
                config,
                groups: RwLock::new(groups),
                store: Arc::new(store),
                timers: Timers::default(),
                gauge,
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &GroupConfig {
        &self.inner.config
    }

    /// Number of groups known (including empty ones that only hold offsets).
    pub fn group_count(&self) -> usize {
        self.inner.groups.read().len()
    }

    /// Starts the background task serving deadlines and housekeeping.
    pub fn start(&self) -> CoordinatorTask {
        let (stop, stopped) = watch::channel(false);
        let handle = tokio::spawn(run(self.clone(), stopped));
        CoordinatorTask { stop, handle }
    }

    fn get(&self, id: &str) -> Option<Arc<Group>> {
        self.inner.groups.read().get(id).cloned()
    }

    fn get_or_create(&self, id: &str) -> Arc<Group> {
        if let Some(g) = self.get(id) {
            return g;
        }
        let mut groups = self.inner.groups.write();
        let group = groups
            .entry(id.to_owned())
            .or_insert_with(|| {
                Arc::new(Group {
                    id: id.to_owned(),
                    state: Mutex::new(GroupState::new(now_ms())),
                })
            })
            .clone();
        self.inner.gauge.set(groups.len() as i64);
        group
    }

    /// Runs a transition under the group's lock, then queues the group's next deadline.
    fn with_group<R>(&self, group: &Group, f: impl FnOnce(&mut GroupState, &Env<'_>) -> R) -> R {
        let inner = &*self.inner;
        let mut state = group.state.lock();
        let env = Env {
            group: &group.id,
            now: Instant::now(),
            now_ms: now_ms(),
            config: &inner.config,
            store: &inner.store,
        };
        let result = f(&mut state, &env);
        if let Some(next) = state.next_deadline() {
            if state.armed.is_none_or(|armed| next < armed) {
                state.armed = Some(next);
                inner.timers.schedule(next, &group.id);
            }
        }
        result
    }

    /// Removes a group that is Dead from the map (the caller holds its lock).
    fn remove_dead(&self, group: &Arc<Group>) {
        let mut groups = self.inner.groups.write();
        if groups.get(&group.id).is_some_and(|g| Arc::ptr_eq(g, group)) {
            groups.remove(&group.id);
        }
        self.inner.gauge.set(groups.len() as i64);
    }

    /// Deletes an Empty group that has no offsets (and no KIP-394 ids outstanding), as
    /// Kafka's cleanup does. The caller holds the group's lock.
    fn retire_if_unused(&self, group: &Arc<Group>, state: &mut GroupState, env: &Env<'_>) {
        if state.phase() != GroupPhase::Empty
            || state.has_pending_members()
            || env.store.has_offsets(&group.id)
        {
            return;
        }
        match env.store.delete_group(&group.id, env.now_ms) {
            Ok(_) => {
                state.mark_dead(env.now_ms);
                self.remove_dead(group);
                tracing::info!(group = %group.id, "removed an empty group without offsets");
            }
            Err(e) => {
                tracing::warn!(group = %group.id, error = %e, "could not delete an unused group")
            }
        }
    }

    /// Fsyncs the offsets log if its flush policy asks, off the async threads.
    async fn flush_if_due(&self) -> Result<(), i16> {
        if !self.inner.store.flush_due() {
            return Ok(());
        }
        let store = self.inner.store.clone();
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "fsync of the offsets log failed");
                Err(E::NotCoordinator.code())
            }
            Err(e) => {
                tracing::error!(error = %e, "fsync task of the offsets log failed");
                Err(E::NotCoordinator.code())
            }
        }
    }

    /// JoinGroup: answers at once or when the rebalance completes (or at shutdown).
    pub async fn join(
        &self,
        group_id: &str,
        params: JoinParams,
        shutdown: watch::Receiver<bool>,
    ) -> JoinOutcome {
        let member_id = params.member_id.clone();
        let group = if member_id.is_empty() {
            self.get_or_create(group_id)
        } else {
            match self.get(group_id) {
                Some(g) => g,
                None => return join_error(E::UnknownMemberId.code(), &member_id),
            }
        };
        let reply = self.with_group(&group, |state, env| state.join(env, params));
        wait_for(
            reply,
            shutdown,
            || join_error(E::NotCoordinator.code(), &member_id),
            || join_error(E::UnknownMemberId.code(), &member_id),
        )
        .await
    }

    /// SyncGroup: answers at once or when the leader's assignment arrives.
    pub async fn sync(
        &self,
        group_id: &str,
        params: SyncParams,
        shutdown: watch::Receiver<bool>,
    ) -> SyncOutcome {
        let Some(group) = self.get(group_id) else {
            return sync_error(E::UnknownMemberId.code());
        };
        let reply = self.with_group(&group, |state, env| state.sync(env, params));
        wait_for(
            reply,
            shutdown,
            || sync_error(E::NotCoordinator.code()),
            || sync_error(E::RebalanceInProgress.code()),
        )
        .await
    }

    /// Heartbeat: the error code.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        match self.get(group_id) {
            None => E::UnknownMemberId.code(),
            Some(group) => self.with_group(&group, |state, env| {
                state.heartbeat(env, member_id, instance_id, generation)
            }),
        }
    }

    /// LeaveGroup: one code per leaving member, or a group-level error.
    pub fn leave(&self, group_id: &str, leaving: &[LeavingMember]) -> Result<Vec<i16>, i16> {
        match self.get(group_id) {
            None => Ok(vec![E::UnknownMemberId.code(); leaving.len()]),
            Some(group) => self.with_group(&group, |state, env| state.leave(env, leaving)),
        }
    }

    /// OffsetCommit for partitions already checked to exist: the error code for all of them.
    pub async fn commit_offsets(&self, req: CommitRequest) -> i16 {
        let group = match self.get(&req.group_id) {
            Some(g) => g,
            // A simple group: only stores offsets (Kafka creates it on the first commit).
            None if req.generation < 0 => self.get_or_create(&req.group_id),
            None => return req.unknown_group_error,
        };
        let result = self.with_group(&group, |state, env| {
            state.validate_offset_commit(
                env,
                &req.member_id,
                req.instance_id.as_deref(),
                req.generation,
            )?;
            let changes = req
                .offsets
                .into_iter()
                .map(|(topic, partition, value)| Change::Offset {
                    group: group.id.clone(),
                    topic,
                    partition,
                    value: Some(value),
                })
                .collect();
            env.store.append(changes, env.now_ms).map_err(|e| {
                tracing::error!(group = %group.id, error = %e, "could not store committed offsets");
                e.commit_error_code()
            })
        });
        match result {
            Ok(()) => self.flush_if_due().await.err().unwrap_or(0),
            Err(code) => code,
        }
    }

    /// OffsetFetch of one group: the committed offsets of the named partitions, or of every
    /// partition with a commit when `topics` is `None`. An unknown group has none (not an
    /// error, as in Kafka).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, Vec<FetchedOffset>)> {
        self.inner.store.read(group_id, |stored| match topics {
            Some(wanted) => wanted
                .iter()
                .map(|(topic, partitions)| {
                    let committed = stored.and_then(|g| g.offsets.get(topic));
                    let offsets = partitions
                        .iter()
                        .map(|p| (*p, committed.and_then(|c| c.get(p)).cloned()))
                        .collect();
                    (topic.clone(), offsets)
                })
                .collect(),
            None => stored
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(topic, parts)| {
                            let offsets =
                                parts.iter().map(|(p, v)| (*p, Some(v.clone()))).collect();
                            (topic.clone(), offsets)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// ListGroups: every group, sorted by id.
    pub fn list_groups(&self) -> Vec<GroupListing> {
        let groups: Vec<Arc<Group>> = self.inner.groups.read().values().cloned().collect();
        let mut out: Vec<GroupListing> = groups
            .iter()
            .map(|g| {
                let state = g.state.lock();
                GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: state.protocol_type().unwrap_or_default().to_owned(),
                    phase: state.phase(),
                }
            })
            .filter(|l| l.phase != GroupPhase::Dead)
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DescribeGroups of one group (`None`: unknown).
    pub fn describe_group(&self, group_id: &str) -> Option<GroupDescription> {
        let group = self.get(group_id)?;
        let description = group.state.lock().describe();
        (description.phase != GroupPhase::Dead).then_some(description)
    }

    /// DeleteGroups of one group: its error code (only empty groups can be deleted).
    pub async fn delete_group(&self, group_id: &str) -> i16 {
        let Some(group) = self.get(group_id) else {
            return E::GroupIdNotFound.code();
        };
        let code = self.with_group(&group, |state, env| match state.phase() {
            GroupPhase::Dead => E::GroupIdNotFound.code(),
            GroupPhase::Empty => match env.store.delete_group(&group.id, env.now_ms) {
                Ok(offsets) => {
                    state.mark_dead(env.now_ms);
                    self.remove_dead(&group);
                    tracing::info!(group = %group.id, offsets, "deleted group");
                    0
                }
                Err(e) => {
                    tracing::error!(group = %group.id, error = %e, "could not delete group");
                    e.commit_error_code()
                }
            },
            _ => E::NonEmptyGroup.code(),
        });
        if code != 0 {
            return code;
        }
        self.flush_if_due().await.err().unwrap_or(0)
    }

    /// OffsetDelete: one code per partition (same order), or a group-level error. Offsets of
    /// topics an active consumer group subscribes to are refused (GROUP_SUBSCRIBED_TO_TOPIC).
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        let Some(group) = self.get(group_id) else {
            return Err(E::GroupIdNotFound.code());
        };
        let codes = self.with_group(&group, |state, env| {
            let codes: Vec<i16> = match state.phase() {
                GroupPhase::Dead => return Err(E::GroupIdNotFound.code()),
                GroupPhase::Empty => vec![0; partitions.len()],
                _ if state.protocol_type() == Some(CONSUMER_PROTOCOL_TYPE) => partitions
                    .iter()
                    .map(|(t, _)| {
                        if state.is_subscribed_to(t) {
                            E::GroupSubscribedToTopic.code()
                        } else {
                            0
                        }
                    })
                    .collect(),
                _ => return Err(E::NonEmptyGroup.code()),
            };
            let eligible: Vec<(String, i32)> = partitions
                .iter()
                .zip(&codes)
                .filter(|(_, c)| **c == 0)
                .map(|(p, _)| p.clone())
                .collect();
            let removed = env
                .store
                .delete_offsets(&group.id, &eligible, env.now_ms)
                .map_err(|e| e.commit_error_code())?;
            tracing::info!(group = %group.id, removed, "deleted offsets");
            self.retire_if_unused(&group, state, env);
            Ok(codes)
        })?;
        self.flush_if_due().await?;
        Ok(codes)
    }

    /// Deletes every group's offsets of a topic that was deleted (Kafka does this when a topic
    /// goes away, so a topic re-created under the same name starts without stale offsets).
    pub fn forget_topic(&self, topic: &str) -> Result<usize, StoreError> {
        let removed = self.inner.store.forget_topic(topic, now_ms())?;
        if removed > 0 {
            tracing::info!(
                topic,
                removed,
                "removed committed offsets of a deleted topic"
            );
        }
        Ok(removed)
    }

    /// The offsets log's store (for diagnostics and tests).
    pub fn store(&self) -> &OffsetStore {
        &self.inner.store
    }

    /// Handles every wake-up due at `now`.
    fn fire_due(&self, now: Instant) {
        for (at, id) in self.inner.timers.pop_due(now) {
            let Some(group) = self.get(&id) else {
                continue;
            };
            self.with_group(&group, |state, env| {
                if state.armed == Some(at) {
                    state.armed = None;
                }
                state.expire(env);
            });
        }
    }

    /// Offset expiry (when `expire` is set) and the checkpoint. Blocking.
    fn housekeeping(&self, expire: bool) {
        if expire {
            self.expire_offsets();
        }
        let store = &self.inner.store;
        if store.checkpoint_due() {
            let started = Instant::now();
            match store.checkpoint(now_ms()) {
                Ok(o) => tracing::info!(
                    records = o.records,
                    bytes = o.bytes,
                    old_log_start = o.old_log_start,
                    new_log_start = o.new_log_start,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "checkpointed the offsets log"
                ),
                Err(e) => tracing::error!(error = %e, "offsets log checkpoint failed; will retry"),
            }
        }
        self.inner.gauge.set(self.group_count() as i64);
    }

    fn expire_offsets(&self) {
        let retention_ms =
            i64::try_from(self.inner.config.offsets_retention.as_millis()).unwrap_or(i64::MAX);
        let groups: Vec<Arc<Group>> = self.inner.groups.read().values().cloned().collect();
        for group in groups {
            self.with_group(&group, |state, env| {
                let result = {
                    let rule = match (state.phase(), state.protocol_type()) {
                        (GroupPhase::Empty, Some(_)) => {
                            Some(Expiry::EmptySince(state.state_timestamp_ms()))
                        }
                        (GroupPhase::Empty, None) => Some(Expiry::ByCommitTime(None)),
                        (GroupPhase::Stable, Some(CONSUMER_PROTOCOL_TYPE)) => state
                            .subscribed_topics()
                            .map(|keep| Expiry::ByCommitTime(Some(keep))),
                        _ => None,
                    };
                    rule.map(|rule| env.store.expire(&group.id, rule, retention_ms, env.now_ms))
                };
                match result {
                    Some(Ok(n)) if n > 0 => {
                        tracing::info!(group = %group.id, expired = n, "expired committed offsets")
                    }
                    Some(Err(e)) => {
                        tracing::warn!(group = %group.id, error = %e, "offset expiry failed")
                    }
                    _ => {}
                }
                self.retire_if_unused(&group, state, env);
            });
        }
    }
}

async fn run(coordinator: GroupCoordinator, mut stop: watch::Receiver<bool>) {
    let config = coordinator.inner.config.clone();
    let mut housekeeping =
        tokio::time::interval(HOUSEKEEPING_PERIOD.min(config.offsets_retention_check_interval));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_expiry = Instant::now();
    loop {
        let next = coordinator.inner.timers.next();
        let sleep = async move {
            match next {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = sleep => coordinator.fire_due(Instant::now()),
            _ = coordinator.inner.timers.changed() => {}
            _ = housekeeping.tick() => {
                let expire = last_expiry.elapsed() >= config.offsets_retention_check_interval;
                if expire {
                    last_expiry = Instant::now();
                }
                let c = coordinator.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || c.housekeeping(expire)).await {
                    tracing::error!(error = %e, "group housekeeping failed");
                }
            }
        }
    }
    tracing::debug!("group coordinator task stopped");
}
