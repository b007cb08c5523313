//! One group's state machine: Kafka's classic rebalance protocol, free of I/O except the
//! group-metadata writes the protocol requires (through [`Env::store`]).
//!
//! Every method runs under the group's mutex with an explicit `now`, so the machine is
//! deterministic: the coordinator drives its deadlines from a timer, unit tests drive them by
//! passing later instants. Waiting requests (JoinGroup, SyncGroup) are parked as `oneshot`
//! senders inside their member and completed when the group moves on; no lock is held while
//! a request waits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use tokio::sync::oneshot;

use super::codec::GroupValue;
use super::protocol::{subscribed_topics, CONSUMER_PROTOCOL_TYPE};
use super::store::OffsetStore;
use super::GroupConfig;

/// How long a new member may wait in a JoinGroup before it is dropped (Kafka's
/// `NewMemberJoinTimeoutMs`): a client that gave up on a long rebalance must not stay a member.
pub const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The states of a classic group (Kafka's names, as DescribeGroups and ListGroups report them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupPhase {
    /// No members; offsets may still be stored.
    Empty,
    /// A rebalance started: members must rejoin.
    PreparingRebalance,
    /// The join phase completed: waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted or expired; requests that still hold it are told to retry.
    Dead,
}

impl GroupPhase {
    /// Kafka's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupPhase::Empty => "Empty",
            GroupPhase::PreparingRebalance => "PreparingRebalance",
            GroupPhase::CompletingRebalance => "CompletingRebalance",
            GroupPhase::Stable => "Stable",
            GroupPhase::Dead => "Dead",
        }
    }
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// The member's metadata for the selected protocol.
    pub metadata: Bytes,
}

/// The answer to a JoinGroup, independent of the request version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinOutcome {
    /// Error code (0 for none).
    pub error: i16,
    /// Generation.
    pub generation: i32,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Selected protocol.
    pub protocol_name: Option<String>,
    /// Leader's member id.
    pub leader: String,
    /// The member id of the requester (assigned, for a new member).
    pub member_id: String,
    /// Every member, for the leader only.
    pub members: Vec<JoinMember>,
    /// KIP-814: the leader must not compute a new assignment.
    pub skip_assignment: bool,
}

impl JoinOutcome {
    fn error(code: i16, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error: code,
            generation: -1,
            member_id: member_id.to_owned(),
            ..JoinOutcome::default()
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Error code (0 for none).
    pub error: i16,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Selected protocol.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

impl SyncOutcome {
    fn error(code: i16) -> SyncOutcome {
        SyncOutcome {
            error: code,
            ..SyncOutcome::default()
        }
    }
}

/// An answer now, or later through a channel (a long poll).
#[derive(Debug)]
pub enum Reply<T> {
    /// Answer at once.
    Now(T),
    /// Wait for the group to move on.
    Wait(oneshot::Receiver<T>),
}

/// A JoinGroup request, decoded and validated against the broker's limits.
#[derive(Debug, Clone)]
pub struct JoinParams {
    /// Member id (empty for a new member).
    pub member_id: String,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// Client host (`/ip`, as Kafka shows it).
    pub client_host: String,
    /// Session timeout.
    pub session_timeout: Duration,
    /// Rebalance timeout.
    pub rebalance_timeout: Duration,
    /// Protocol type.
    pub protocol_type: String,
    /// Protocols in preference order, with metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// KIP-394 (JoinGroup v4+): a new dynamic member first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// KIP-814 (JoinGroup v9+): the client understands `skip_assignment`.
    pub supports_skip_assignment: bool,
}

/// A SyncGroup request.
#[derive(Debug, Clone)]
pub struct SyncParams {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// Generation the member believes current.
    pub generation: i32,
    /// Protocol type (v5+), checked against the group's.
    pub protocol_type: Option<String>,
    /// Protocol name (v5+), checked against the group's.
    pub protocol_name: Option<String>,
    /// The leader's assignment per member id (empty for followers).
    pub assignments: Vec<(String, Bytes)>,
}

/// Who leaves in a LeaveGroup.
#[derive(Debug, Clone)]
pub struct LeavingMember {
    /// Member id (empty: look it up by instance id).
    pub member_id: String,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata for the selected protocol (Stable groups only, as Kafka).
    pub metadata: Bytes,
    /// Assignment (Stable groups only).
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// State.
    pub phase: GroupPhase,
    /// Protocol type (empty for none).
    pub protocol_type: String,
    /// Selected protocol (Stable groups only, as Kafka).
    pub protocol: String,
    /// Generation.
    pub generation: i32,
    /// Leader's member id.
    pub leader: Option<String>,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// Everything a transition needs from outside the group.
pub struct Env<'a> {
    /// Group id.
    pub group: &'a str,
    /// Monotonic now, for deadlines.
    pub now: Instant,
    /// Wall-clock now (ms since the epoch), for persisted timestamps.
    pub now_ms: i64,
    /// Coordinator settings.
    pub config: &'a GroupConfig,
    /// Where group metadata is persisted.
    pub store: &'a OffsetStore,
}

struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout: Duration,
    session_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// Added in the current rebalance and not answered yet: expires after
    /// [`NEW_MEMBER_JOIN_TIMEOUT`] even while waiting.
    is_new: bool,
    /// Heartbeat deadline; `None` while waiting in a join or sync (Kafka keeps such members
    /// alive and re-arms the deadline when it answers them).
    deadline: Option<Instant>,
}

impl Member {
    fn awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    fn awaiting_sync(&self) -> bool {
        self.sync_waiter.is_some()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    fn answer_join(&mut self, outcome: JoinOutcome) {
        if let Some(waiter) = self.join_waiter.take() {
            // The requester may be gone (connection closed): nothing to do then.
            let _ = waiter.send(outcome);
        }
    }

    fn answer_sync(&mut self, outcome: SyncOutcome) -> bool {
        match self.sync_waiter.take() {
            Some(waiter) => {
                let _ = waiter.send(outcome);
                true
            }
            None => false,
        }
    }

    fn arm_heartbeat(&mut self, now: Instant) {
        self.deadline = Some(now + self.session_timeout);
    }
}

#[derive(Debug, Clone, Copy)]
enum JoinTimer {
    /// The first rebalance of an empty group waits `group.initial.rebalance.delay.ms`, and
    /// again (up to the rebalance timeout) each time a new member joined meanwhile.
    Initial {
        deadline: Instant,
        delay: Duration,
        remaining: Duration,
    },
    /// Members that have not rejoined by then are dropped.
    Rebalance { deadline: Instant },
}

impl JoinTimer {
    fn deadline(&self) -> Instant {
        match self {
            JoinTimer::Initial { deadline, .. } | JoinTimer::Rebalance { deadline } => *deadline,
        }
    }
}

/// One group's membership and rebalance state.
pub struct GroupState {
    phase: GroupPhase,
    previous: GroupPhase,
    /// When the current phase began (ms since the epoch); drives offset retention.
    state_timestamp_ms: i64,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    generation: i32,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// `group.instance.id` → member id.
    static_members: HashMap<String, String>,
    /// KIP-394 member ids handed out and not yet used, with their expiry.
    pending: HashMap<String, Instant>,
    /// Members that have not sent SyncGroup in this generation.
    pending_sync: HashSet<String>,
    new_member_added: bool,
    join_timer: Option<JoinTimer>,
    /// Deadline for every member's SyncGroup, for one generation.
    sync_timer: Option<(Instant, i32)>,
    /// Topics the members subscribe to (consumer groups; `None` when unknown).
    subscribed: Option<HashSet<String>>,
    /// The earliest wake-up queued for this group in the coordinator's timer (bookkeeping
    /// for [`super::timer`]).
    pub(crate) armed: Option<Instant>,
}

impl GroupState {
    /// A new, empty group.
    pub fn new(now_ms: i64) -> GroupState {
        GroupState {
            phase: GroupPhase::Empty,
            previous: GroupPhase::Empty,
            state_timestamp_ms: now_ms,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            pending_sync: HashSet::new(),
            new_member_added: false,
            join_timer: None,
            sync_timer: None,
            subscribed: None,
            armed: None,
        }
    }

    /// A group loaded from its persisted metadata: always Empty (members rejoin after a
    /// restart) and keeping its protocol type. A group that was already empty keeps its
    /// generation and the time it became empty; one that had members starts a new, empty
    /// generation now — what Kafka's group becomes once the members' sessions expire.
    pub fn restored(meta: Option<&GroupValue>, now_ms: i64) -> GroupState {
        let mut s = GroupState::new(now_ms);
        if let Some(m) = meta {
            s.generation = m.generation;
            s.protocol_type = Some(m.protocol_type.clone()).filter(|t| !t.is_empty());
            if m.protocol.is_some() {
                s.generation = m.generation.checked_add(1).unwrap_or(1);
            } else if m.state_timestamp >= 0 {
                s.state_timestamp_ms = m.state_timestamp;
            }
            if s.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE) {
                s.subscribed = Some(HashSet::new());
            }
        }
        s
    }

    /// Current phase.
    pub fn phase(&self) -> GroupPhase {
        self.phase
    }

    /// Generation.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// Protocol type.
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// When the current phase began (ms since the epoch).
    pub fn state_timestamp_ms(&self) -> i64 {
        self.state_timestamp_ms
    }

    /// Topics the members subscribe to, when known.
    pub fn subscribed_topics(&self) -> Option<&HashSet<String>> {
        self.subscribed.as_ref()
    }

    /// Whether a topic may be in use by the members (unknown subscriptions count as yes).
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        self.subscribed.as_ref().is_none_or(|t| t.contains(topic))
    }

    /// Whether KIP-394 member ids are outstanding.
    pub fn has_pending_members(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The metadata record persisted for this group now.
    pub fn metadata_record(&self, now_ms: i64) -> GroupValue {
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            state_timestamp: now_ms,
        }
    }

    /// Marks the group deleted; requests still holding it get COORDINATOR_NOT_AVAILABLE.
    pub fn mark_dead(&mut self, now_ms: i64) {
        for m in self.members.values_mut() {
            let id = m.id.clone();
            m.answer_join(JoinOutcome::error(E::CoordinatorNotAvailable.code(), &id));
            m.answer_sync(SyncOutcome::error(E::CoordinatorNotAvailable.code()));
        }
        self.members.clear();
        self.static_members.clear();
        self.pending.clear();
        self.pending_sync.clear();
        self.join_timer = None;
        self.sync_timer = None;
        self.transition(GroupPhase::Dead, now_ms);
    }

    fn transition(&mut self, to: GroupPhase, now_ms: i64) {
        self.previous = self.phase;
        self.phase = to;
        self.state_timestamp_ms = now_ms;
    }

    fn can_rebalance(&self) -> bool {
        matches!(
            self.phase,
            GroupPhase::Stable | GroupPhase::CompletingRebalance | GroupPhase::Empty
        )
    }

    fn awaiting_join_count(&self) -> usize {
        self.members.values().filter(|m| m.awaiting_join()).count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.awaiting_join_count() && self.pending.is_empty()
    }

    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty protocol list; otherwise
    /// the type must match and one protocol must be supported by every member.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.phase == GroupPhase::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.values().all(|m| m.supports(name)))
    }

    /// Kafka's vote: among the protocols every member supports, each member votes for the
    /// first one in its own preference order; most votes wins (ties: the earliest candidate
    /// in the first member's order).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| self.members.values().all(|m| m.supports(n)))
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for c in &candidates {
            let v = votes.get(c).copied().unwrap_or(0);
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((c, v));
            }
        }
        best.map(|(name, _)| name.to_owned())
    }

    fn compute_subscribed(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        if self.members.is_empty() {
            return Some(HashSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut all = HashSet::new();
        for m in self.members.values() {
            all.extend(subscribed_topics(&m.metadata(protocol))?);
        }
        Some(all)
    }

    fn current_member_metadata(&self) -> Vec<JoinMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    fn join_result(&self, member_id: &str, with_members: bool, leader: String) -> JoinOutcome {
        JoinOutcome {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            member_id: member_id.to_owned(),
            members: if with_members {
                self.current_member_metadata()
            } else {
                Vec::new()
            },
            skip_assignment: false,
        }
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Kafka's `validateMember`: a static member's instance id must map to this member id.
    fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => Err(E::UnknownMemberId.code()),
                Some(current) if current != member_id => {
                    tracing::info!(member_id, instance, current = %current, "fenced static member");
                    Err(E::FencedInstanceId.code())
                }
                Some(_) => Ok(()),
            },
            None if self.members.contains_key(member_id) => Ok(()),
            None => Err(E::UnknownMemberId.code()),
        }
    }

    /// Removes a member without triggering anything; a request it has parked is told it is
    /// no longer a member.
    fn remove_member(&mut self, member_id: &str) {
        if let Some(mut m) = self.members.remove(member_id) {
            m.answer_join(JoinOutcome::error(E::UnknownMemberId.code(), ""));
            m.answer_sync(SyncOutcome::error(E::UnknownMemberId.code()));
            if let Some(instance) = &m.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
        }
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending.remove(member_id);
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_timer = None;
        }
    }

    fn generate_member_id(prefix: &str) -> String {
        format!("{prefix}-{}", uuid::Uuid::new_v4())
    }

    // ---- JoinGroup ----------------------------------------------------------------------

    /// Handles a JoinGroup for this group (Kafka's `classicGroupJoinToClassicGroup`).
    pub fn join(&mut self, env: &Env<'_>, p: JoinParams) -> Reply<JoinOutcome> {
        let reply = if !self.accept_joining_member(&p.member_id, env.config.max_size) {
            tracing::info!(group = env.group, member = %p.member_id, max = env.config.max_size, "group is full");
            self.remove_member(&p.member_id);
            Reply::Now(JoinOutcome::error(E::GroupMaxSizeReached.code(), ""))
        } else if p.member_id.is_empty() {
            self.join_new_member(env, p)
        } else {
            self.join_existing_member(env, p)
        };
        if self.phase == GroupPhase::PreparingRebalance {
            self.maybe_complete_join(env);
        }
        reply
    }

    fn accept_joining_member(&self, member_id: &str, max_size: usize) -> bool {
        match self.phase {
            GroupPhase::Empty | GroupPhase::Dead => true,
            GroupPhase::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(Member::awaiting_join)
                    || self.awaiting_join_count() < max_size
            }
            GroupPhase::CompletingRebalance | GroupPhase::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max_size
            }
        }
    }

    fn join_new_member(&mut self, env: &Env<'_>, p: JoinParams) -> Reply<JoinOutcome> {
        if self.phase == GroupPhase::Dead {
            return Reply::Now(JoinOutcome::error(E::CoordinatorNotAvailable.code(), ""));
        }
        if !self.supports_protocols(&p.protocol_type, &p.protocols) {
            return Reply::Now(JoinOutcome::error(E::InconsistentGroupProtocol.code(), ""));
        }
        let new_id = Self::generate_member_id(p.instance_id.as_deref().unwrap_or(&p.client_id));
        if let Some(instance) = p.instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                tracing::info!(group = env.group, instance, old = %old_id, new = %new_id, phase = self.phase.as_str(), "static member rejoins with a new member id");
                return self.replace_static_member(env, &old_id, new_id, p);
            }
            return self.add_member_and_rebalance(env, new_id, p);
        }
        if p.require_known_member_id {
            self.pending
                .insert(new_id.clone(), env.now + p.session_timeout);
            return Reply::Now(JoinOutcome::error(E::MemberIdRequired.code(), &new_id));
        }
        self.add_member_and_rebalance(env, new_id, p)
    }

    fn join_existing_member(&mut self, env: &Env<'_>, p: JoinParams) -> Reply<JoinOutcome> {
        let id = p.member_id.clone();
        if self.phase == GroupPhase::Dead {
            return Reply::Now(JoinOutcome::error(E::CoordinatorNotAvailable.code(), &id));
        }
        if !self.supports_protocols(&p.protocol_type, &p.protocols) {
            return Reply::Now(JoinOutcome::error(E::InconsistentGroupProtocol.code(), &id));
        }
        if self.pending.contains_key(&id) {
            if p.instance_id.is_some() {
                // Pending ids are only handed to dynamic members: make it start over.
                return Reply::Now(JoinOutcome::error(E::UnknownMemberId.code(), &id));
            }
            return self.add_member_and_rebalance(env, id, p);
        }
        if let Err(code) = self.validate_member(&id, p.instance_id.as_deref()) {
            return Reply::Now(JoinOutcome::error(code, &id));
        }
        let matches = self
            .members
            .get(&id)
            .is_some_and(|m| m.matches(&p.protocols));
        match self.phase {
            GroupPhase::PreparingRebalance => self.update_member_and_rebalance(env, &id, p),
            GroupPhase::CompletingRebalance if matches => {
                // It missed its JoinGroup response: answer again for this generation.
                let leader = self.leader.clone().unwrap_or_default();
                Reply::Now(self.join_result(&id, self.is_leader(&id), leader))
            }
            GroupPhase::Stable if matches && !self.is_leader(&id) => {
                let leader = self.leader.clone().unwrap_or_default();
                Reply::Now(self.join_result(&id, false, leader))
            }
            // Changed metadata, or the leader rejoining (it may have seen metadata changes
            // that do not show in its subscription): rebalance.
            GroupPhase::CompletingRebalance | GroupPhase::Stable => {
                self.update_member_and_rebalance(env, &id, p)
            }
            GroupPhase::Empty | GroupPhase::Dead => {
                Reply::Now(JoinOutcome::error(E::UnknownMemberId.code(), &id))
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        env: &Env<'_>,
        id: String,
        p: JoinParams,
    ) -> Reply<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if self.phase == GroupPhase::PreparingRebalance && self.previous == GroupPhase::Empty {
            self.new_member_added = true;
        }
        if let Some(instance) = &p.instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        self.pending.remove(&id);
        tracing::info!(group = env.group, member = %id, instance = ?p.instance_id, client = %p.client_id, "member joins");
        self.members.insert(
            id.clone(),
            Member {
                id,
                instance_id: p.instance_id,
                client_id: p.client_id,
                client_host: p.client_host,
                rebalance_timeout: p.rebalance_timeout,
                session_timeout: p.session_timeout,
                protocols: p.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                is_new: true,
                deadline: Some(env.now + NEW_MEMBER_JOIN_TIMEOUT),
            },
        );
        self.maybe_prepare_rebalance_or_complete_join(env, "new member");
        Reply::Wait(rx)
    }

    fn update_member_and_rebalance(
        &mut self,
        env: &Env<'_>,
        id: &str,
        p: JoinParams,
    ) -> Reply<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(id) {
            m.protocols = p.protocols;
            m.rebalance_timeout = p.rebalance_timeout;
            m.session_timeout = p.session_timeout;
            if let Some(superseded) = m.join_waiter.replace(tx) {
                let _ = superseded.send(JoinOutcome::error(E::RebalanceInProgress.code(), id));
            }
        }
        self.maybe_prepare_rebalance_or_complete_join(env, "member rejoins");
        Reply::Wait(rx)
    }

    /// KIP-345: a static member rejoining without its member id takes over the old member
    /// (which is fenced) and, in a Stable group whose protocol does not change, gets the old
    /// assignment back without a rebalance.
    fn replace_static_member(
        &mut self,
        env: &Env<'_>,
        old_id: &str,
        new_id: String,
        p: JoinParams,
    ) -> Reply<JoinOutcome> {
        let current_leader = self.leader.clone();
        let Some(mut member) = self.members.remove(old_id) else {
            // The mapping outlived its member: treat it as a new static member.
            if let Some(instance) = &p.instance_id {
                self.static_members.remove(instance);
            }
            return self.add_member_and_rebalance(env, new_id, p);
        };
        member.answer_join(JoinOutcome::error(E::FencedInstanceId.code(), old_id));
        member.answer_sync(SyncOutcome::error(E::FencedInstanceId.code()));
        member.id = new_id.clone();
        member.protocols = p.protocols;
        member.rebalance_timeout = p.rebalance_timeout;
        member.session_timeout = p.session_timeout;
        member.client_id = p.client_id;
        member.client_host = p.client_host;
        member.arm_heartbeat(env.now);
        self.members.insert(new_id.clone(), member);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.clone());
        }
        if let Some(instance) = p.instance_id {
            self.static_members.insert(instance, new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        match self.phase {
            GroupPhase::Stable if self.select_protocol() == self.protocol_name => {
                tracing::info!(group = env.group, member = %new_id, "static member replaced without a rebalance");
                if p.supports_skip_assignment {
                    // KIP-814: the leader learns it leads (to keep watching metadata) but must
                    // not compute an assignment the Stable group would not distribute.
                    let is_leader = self.is_leader(&new_id);
                    let leader = self.leader.clone().unwrap_or_default();
                    let mut out = self.join_result(&new_id, is_leader, leader);
                    out.skip_assignment = is_leader;
                    Reply::Now(out)
                } else {
                    // Older clients are told the previous leader id, so a rejoining leader does
                    // not run the assignor for nothing.
                    Reply::Now(self.join_result(&new_id, false, current_leader.unwrap_or_default()))
                }
            }
            GroupPhase::CompletingRebalance => {
                // The leader may be computing an assignment for the old member id.
                let rx = self.park_join(&new_id);
                self.prepare_rebalance(env, "static member replaced during the sync phase");
                rx
            }
            _ => {
                let rx = self.park_join(&new_id);
                self.maybe_prepare_rebalance_or_complete_join(
                    env,
                    "static member changed its protocols",
                );
                rx
            }
        }
    }

    fn park_join(&mut self, id: &str) -> Reply<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(id) {
            m.join_waiter = Some(tx);
        }
        Reply::Wait(rx)
    }

    fn maybe_prepare_rebalance_or_complete_join(&mut self, env: &Env<'_>, reason: &str) {
        if self.can_rebalance() {
            self.prepare_rebalance(env, reason);
        } else {
            self.maybe_complete_join(env);
        }
    }

    fn prepare_rebalance(&mut self, env: &Env<'_>, reason: &str) {
        if self.phase == GroupPhase::CompletingRebalance {
            self.reset_and_propagate_assignment_error(env, E::RebalanceInProgress.code());
        }
        self.pending_sync.clear();
        self.sync_timer = None;
        let initial = self.phase == GroupPhase::Empty;
        let rebalance_timeout = self.rebalance_timeout();
        self.join_timer = Some(if initial {
            let delay = env.config.initial_rebalance_delay;
            JoinTimer::Initial {
                deadline: env.now + delay,
                delay,
                remaining: rebalance_timeout.saturating_sub(delay),
            }
        } else {
            JoinTimer::Rebalance {
                deadline: env.now + rebalance_timeout,
            }
        });
        tracing::info!(
            group = env.group,
            generation = self.generation,
            from = self.phase.as_str(),
            reason,
            "preparing to rebalance"
        );
        self.transition(GroupPhase::PreparingRebalance, env.now_ms);
        if !initial {
            self.maybe_complete_join(env);
        }
    }

    fn maybe_complete_join(&mut self, env: &Env<'_>) {
        if self.phase == GroupPhase::PreparingRebalance
            && self.has_all_members_joined()
            && self.previous != GroupPhase::Empty
        {
            self.complete_join(env);
        }
    }

    fn complete_join(&mut self, env: &Env<'_>) {
        self.join_timer = None;
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        if !gone.is_empty() {
            tracing::info!(group = env.group, members = ?gone, "removing members that did not rejoin");
        }
        for id in &gone {
            self.remove_member(id);
        }
        if self.phase == GroupPhase::Dead {
            return;
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined are left: wait for them (or for
            // their sessions to expire).
            tracing::warn!(
                group = env.group,
                "no member rejoined; extending the rebalance"
            );
            self.join_timer = Some(JoinTimer::Rebalance {
                deadline: env.now + self.rebalance_timeout(),
            });
            return;
        }
        self.init_next_generation(env.now_ms);
        if self.phase == GroupPhase::Empty {
            tracing::info!(
                group = env.group,
                generation = self.generation,
                "group is empty"
            );
            let record = self.metadata_record(env.now_ms);
            if let Err(e) = env.store.append(
                vec![super::store::Change::Group {
                    group: env.group.to_owned(),
                    value: Some(record),
                }],
                env.now_ms,
            ) {
                // Only the retention clock depends on it; the next write repairs it.
                tracing::warn!(group = env.group, error = %e, "could not persist the empty group");
            }
            return;
        }
        tracing::info!(group = env.group, generation = self.generation, members = self.members.len(), protocol = ?self.protocol_name, leader = ?self.leader, "join phase complete");
        let leader = self.leader.clone().unwrap_or_default();
        let everyone = self.current_member_metadata();
        let generation = self.generation;
        let (protocol_type, protocol_name) =
            (self.protocol_type.clone(), self.protocol_name.clone());
        for m in self.members.values_mut() {
            let is_leader = m.id == leader;
            m.answer_join(JoinOutcome {
                error: 0,
                generation,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                leader: leader.clone(),
                member_id: m.id.clone(),
                members: if is_leader {
                    everyone.clone()
                } else {
                    Vec::new()
                },
                skip_assignment: false,
            });
            m.arm_heartbeat(env.now);
            m.is_new = false;
            self.pending_sync.insert(m.id.clone());
        }
        self.sync_timer = Some((env.now + self.rebalance_timeout(), self.generation));
    }

    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = &self.leader else {
            return false;
        };
        if self.members.get(leader).is_some_and(Member::awaiting_join) {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    fn init_next_generation(&mut self, now_ms: i64) {
        self.generation = self.generation.checked_add(1).unwrap_or(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed = self.compute_subscribed();
            self.transition(GroupPhase::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            self.subscribed = self.compute_subscribed();
            self.transition(GroupPhase::CompletingRebalance, now_ms);
        }
        self.pending_sync.clear();
        self.sync_timer = None;
    }

    fn reset_and_propagate_assignment_error(&mut self, env: &Env<'_>, code: i16) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if m.answer_sync(SyncOutcome::error(code)) {
                m.arm_heartbeat(env.now);
            }
        }
    }

    // ---- SyncGroup ----------------------------------------------------------------------

    /// Handles a SyncGroup (Kafka's `classicGroupSyncToClassicGroup`).
    pub fn sync(&mut self, env: &Env<'_>, p: SyncParams) -> Reply<SyncOutcome> {
        let member_id = p.member_id.as_str();
        if self.phase == GroupPhase::Dead {
            return Reply::Now(SyncOutcome::error(E::CoordinatorNotAvailable.code()));
        }
        if let Err(code) = self.validate_member(member_id, p.instance_id.as_deref()) {
            return Reply::Now(SyncOutcome::error(code));
        }
        if p.generation != self.generation {
            return Reply::Now(SyncOutcome::error(E::IllegalGeneration.code()));
        }
        let inconsistent = |asked: Option<&str>, ours: Option<&str>| matches!((asked, ours), (Some(a), Some(o)) if a != o);
        if inconsistent(p.protocol_type.as_deref(), self.protocol_type.as_deref())
            || inconsistent(p.protocol_name.as_deref(), self.protocol_name.as_deref())
        {
            return Reply::Now(SyncOutcome::error(E::InconsistentGroupProtocol.code()));
        }
        match self.phase {
            GroupPhase::Empty | GroupPhase::Dead => {
                Reply::Now(SyncOutcome::error(E::UnknownMemberId.code()))
            }
            GroupPhase::PreparingRebalance => {
                Reply::Now(SyncOutcome::error(E::RebalanceInProgress.code()))
            }
            GroupPhase::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(member_id) {
                    if let Some(superseded) = m.sync_waiter.replace(tx) {
                        let _ = superseded.send(SyncOutcome::error(E::RebalanceInProgress.code()));
                    }
                }
                self.remove_pending_sync(member_id);
                if self.is_leader(member_id) {
                    self.complete_sync(env, p.assignments);
                }
                Reply::Wait(rx)
            }
            GroupPhase::Stable => {
                self.remove_pending_sync(member_id);
                let (protocol_type, protocol_name) =
                    (self.protocol_type.clone(), self.protocol_name.clone());
                match self.members.get_mut(member_id) {
                    Some(m) => {
                        m.arm_heartbeat(env.now);
                        Reply::Now(SyncOutcome {
                            error: 0,
                            protocol_type,
                            protocol_name,
                            assignment: m.assignment.clone(),
                        })
                    }
                    None => Reply::Now(SyncOutcome::error(E::UnknownMemberId.code())),
                }
            }
        }
    }

    fn remove_pending_sync(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_timer = None;
        }
    }

    /// The leader's assignment: persist the group, then hand every member its part.
    fn complete_sync(&mut self, env: &Env<'_>, assignments: Vec<(String, Bytes)>) {
        tracing::info!(
            group = env.group,
            generation = self.generation,
            members = self.members.len(),
            "assignment received from the leader"
        );
        let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
        let mut missing = Vec::new();
        let mut assignment: Vec<(String, Bytes)> = Vec::with_capacity(self.members.len());
        for id in self.members.keys() {
            match given.remove(id) {
                Some(a) => assignment.push((id.clone(), a)),
                None => {
                    missing.push(id.clone());
                    assignment.push((id.clone(), Bytes::new()));
                }
            }
        }
        if !missing.is_empty() {
            tracing::warn!(group = env.group, members = ?missing, "leader gave no assignment to some members; they get an empty one");
        }
        let record = self.metadata_record(env.now_ms);
        let stored = env.store.append(
            vec![super::store::Change::Group {
                group: env.group.to_owned(),
                value: Some(record),
            }],
            env.now_ms,
        );
        if let Err(e) = stored {
            tracing::error!(group = env.group, error = %e, "could not persist the group assignment");
            self.reset_and_propagate_assignment_error(env, e.sync_error_code());
            self.maybe_prepare_rebalance_or_complete_join(env, "persisting the assignment failed");
            return;
        }
        let (protocol_type, protocol_name) =
            (self.protocol_type.clone(), self.protocol_name.clone());
        for (id, a) in assignment {
            if let Some(m) = self.members.get_mut(&id) {
                m.assignment = a.clone();
                if m.answer_sync(SyncOutcome {
                    error: 0,
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    assignment: a,
                }) {
                    m.arm_heartbeat(env.now);
                }
            }
        }
        self.transition(GroupPhase::Stable, env.now_ms);
    }

    // ---- Heartbeat, LeaveGroup, OffsetCommit --------------------------------------------

    /// Handles a Heartbeat; returns its error code.
    pub fn heartbeat(
        &mut self,
        env: &Env<'_>,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if self.phase == GroupPhase::Dead {
            return E::CoordinatorNotAvailable.code();
        }
        if let Err(code) = self.validate_member(member_id, instance_id) {
            return code;
        }
        if generation != self.generation {
            return E::IllegalGeneration.code();
        }
        let phase = self.phase;
        let Some(m) = self.members.get_mut(member_id) else {
            return E::UnknownMemberId.code();
        };
        match phase {
            GroupPhase::Empty | GroupPhase::Dead => E::UnknownMemberId.code(),
            GroupPhase::PreparingRebalance => {
                m.arm_heartbeat(env.now);
                E::RebalanceInProgress.code()
            }
            GroupPhase::CompletingRebalance | GroupPhase::Stable => {
                m.arm_heartbeat(env.now);
                0
            }
        }
    }

    /// Handles a LeaveGroup: one error code per leaving member, or a group-level error.
    pub fn leave(&mut self, env: &Env<'_>, leaving: &[LeavingMember]) -> Result<Vec<i16>, i16> {
        if self.phase == GroupPhase::Dead {
            return Err(E::CoordinatorNotAvailable.code());
        }
        let mut codes = Vec::with_capacity(leaving.len());
        let mut left = 0usize;
        for l in leaving {
            let code = if l.member_id.is_empty() {
                // Administrative removal of a static member by instance id.
                match l
                    .instance_id
                    .as_ref()
                    .and_then(|i| self.static_members.get(i).cloned())
                {
                    Some(id) => {
                        self.remove_member(&id);
                        0
                    }
                    None => E::UnknownMemberId.code(),
                }
            } else if self.pending.remove(&l.member_id).is_some() {
                0
            } else {
                match self.validate_member(&l.member_id, l.instance_id.as_deref()) {
                    Ok(()) => {
                        self.remove_member(&l.member_id);
                        0
                    }
                    Err(code) => code,
                }
            };
            if code == 0 {
                tracing::info!(group = env.group, member = %l.member_id, instance = ?l.instance_id, "member left");
                left += 1;
            }
            codes.push(code);
        }
        if left > 0 {
            match self.phase {
                GroupPhase::Stable | GroupPhase::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(env, "member left")
                }
                GroupPhase::PreparingRebalance => self.maybe_complete_join(env),
                GroupPhase::Empty | GroupPhase::Dead => {}
            }
        }
        Ok(codes)
    }

    /// Kafka's `validateOffsetCommit` for a non-transactional commit; a member's commit
    /// also counts as a heartbeat.
    pub fn validate_offset_commit(
        &mut self,
        env: &Env<'_>,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        if self.phase == GroupPhase::Dead {
            return Err(E::CoordinatorNotAvailable.code());
        }
        if generation < 0 && self.phase == GroupPhase::Empty {
            // `assign()` users and admin tools: allowed while the group has no members.
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation != self.generation {
                return Err(E::IllegalGeneration.code());
            }
        } else if self.phase != GroupPhase::Empty {
            return Err(E::UnknownMemberId.code());
        }
        match self.phase {
            GroupPhase::CompletingRebalance => Err(E::RebalanceInProgress.code()),
            GroupPhase::Dead => Err(E::CoordinatorNotAvailable.code()),
            GroupPhase::Stable | GroupPhase::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.arm_heartbeat(env.now);
                }
                Ok(())
            }
            GroupPhase::Empty => Ok(()),
        }
    }

    // ---- Timers ---------------------------------------------------------------------------

    /// The earliest deadline of this group, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let members = self.members.values().filter_map(|m| m.deadline);
        let pending = self.pending.values().copied();
        let join = self.join_timer.map(|t| t.deadline());
        let sync = self.sync_timer.map(|(d, _)| d);
        members.chain(pending).chain(join).chain(sync).min()
    }

    /// Acts on every deadline that has passed at `env.now`.
    pub fn expire(&mut self, env: &Env<'_>) {
        let now = env.now;
        let due_pending: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due_pending {
            tracing::info!(group = env.group, member = %id, "pending member expired");
            self.pending.remove(&id);
            if self.phase == GroupPhase::PreparingRebalance {
                self.maybe_complete_join(env);
            }
        }

        let due_members: Vec<String> = self
            .members
            .values()
            .filter(|m| m.deadline.is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        for id in due_members {
            // Re-check: completing a join earlier in this pass re-arms deadlines.
            let Some(m) = self
                .members
                .get_mut(&id)
                .filter(|m| m.deadline.is_some_and(|d| d <= now))
            else {
                continue;
            };
            if !m.is_new && (m.awaiting_join() || m.awaiting_sync()) {
                // Waiting in a rebalance counts as alive; re-armed when answered.
                m.deadline = None;
                continue;
            }
            tracing::info!(group = env.group, member = %id, "member session expired; removing it");
            self.remove_member(&id);
            match self.phase {
                GroupPhase::Stable | GroupPhase::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(env, "member session expired")
                }
                GroupPhase::PreparingRebalance => self.maybe_complete_join(env),
                GroupPhase::Empty | GroupPhase::Dead => {}
            }
        }

        if let Some(timer) = self.join_timer.filter(|t| t.deadline() <= now) {
            match timer {
                JoinTimer::Initial {
                    delay, remaining, ..
                } if self.new_member_added && !remaining.is_zero() => {
                    self.new_member_added = false;
                    let next_delay = env.config.initial_rebalance_delay.min(remaining);
                    self.join_timer = Some(JoinTimer::Initial {
                        deadline: now + next_delay,
                        delay: next_delay,
                        remaining: remaining.saturating_sub(delay),
                    });
                }
                _ => self.complete_join(env),
            }
        }

        if let Some((deadline, generation)) = self.sync_timer {
            if deadline <= now {
                self.sync_timer = None;
                if generation == self.generation
                    && matches!(
                        self.phase,
                        GroupPhase::CompletingRebalance | GroupPhase::Stable
                    )
                    && !self.pending_sync.is_empty()
                {
                    let late: Vec<String> = self.pending_sync.drain().collect();
                    tracing::info!(group = env.group, members = ?late, "members did not sync in time; removing them");
                    for id in &late {
                        self.remove_member(id);
                    }
                    self.prepare_rebalance(env, "pending sync expired");
                }
            }
        }
    }

    // ---- Describe ---------------------------------------------------------------------------

    /// The group as DescribeGroups shows it.
    pub fn describe(&self) -> GroupDescription {
        let stable = self.phase == GroupPhase::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupDescription {
            phase: self.phase,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            generation: self.generation,
            leader: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
