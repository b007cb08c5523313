//! The state machine driven with explicit instants: every rule of the classic protocol that the
//! integration tests cannot pin down deterministically (timeouts, votes, fencing).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use veritas_log::LogConfig;

use super::*;
use crate::cluster::{Cluster, Partition};
use crate::config::TopicConfig;
use crate::group::store::OffsetStore;
use crate::group::GroupConfig;

const SESSION: Duration = Duration::from_secs(10);
const REBALANCE: Duration = Duration::from_secs(20);
const DELAY: Duration = Duration::from_secs(3);
/// When [`stable`] groups are Stable: the initial delay, extended once by the later joiners.
const T: Duration = Duration::from_secs(6);

struct Fixture {
    _dir: tempfile::TempDir,
    _cluster: Cluster,
    store: OffsetStore,
    config: GroupConfig,
    t0: Instant,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config(GroupConfig {
            initial_rebalance_delay: DELAY,
            ..GroupConfig::default()
        })
    }

    fn with_config(config: GroupConfig) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::open(dir.path(), LogConfig::default(), true).unwrap();
        let cfg = TopicConfig::from_pairs([("cleanup.policy", Some("compact"))]).unwrap();
        cluster
            .create_topic("__consumer_offsets", 1, 1, cfg, true, false)
            .unwrap();
        let p: Arc<Partition> = cluster.partition("__consumer_offsets", 0).unwrap();
        let store = OffsetStore::open(p, 1 << 20).unwrap();
        Fixture {
            _dir: dir,
            _cluster: cluster,
            store,
            config,
            t0: Instant::now(),
        }
    }

    fn at(&self, t: Duration) -> Env<'_> {
        Env {
            group: "g",
            now: self.t0 + t,
            now_ms: 1_000_000 + t.as_millis() as i64,
            config: &self.config,
            store: &self.store,
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn protocols(names: &[&str]) -> Vec<(String, Bytes)> {
    names
        .iter()
        .map(|n| (n.to_string(), Bytes::from(format!("meta-{n}"))))
        .collect()
}

fn join(member: &str, names: &[&str]) -> JoinParams {
    JoinParams {
        member_id: member.into(),
        instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: SESSION,
        rebalance_timeout: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protocols(names),
        require_known_member_id: true,
        supports_skip_assignment: true,
    }
}

fn static_join(instance: &str, names: &[&str]) -> JoinParams {
    JoinParams {
        instance_id: Some(instance.into()),
        ..join("", names)
    }
}

fn sync(member: &str, generation: i32, assignments: Vec<(String, Bytes)>) -> SyncParams {
    SyncParams {
        member_id: member.into(),
        instance_id: None,
        generation,
        protocol_type: Some("consumer".into()),
        protocol_name: None,
        assignments,
    }
}

fn now<T: std::fmt::Debug>(r: Reply<T>) -> T {
    match r {
        Reply::Now(t) => t,
        Reply::Wait(mut rx) => rx.try_recv().expect("answered at once"),
    }
}

fn parked<T: std::fmt::Debug>(r: Reply<T>) -> oneshot::Receiver<T> {
    match r {
        Reply::Wait(mut rx) => {
            assert!(rx.try_recv().is_err(), "must wait");
            rx
        }
        Reply::Now(t) => panic!("answered at once: {t:?}"),
    }
}

fn answered<T>(rx: &mut oneshot::Receiver<T>) -> T {
    rx.try_recv().expect("answered")
}

/// A new dynamic member's id, through the KIP-394 round trip.
fn member_id(g: &mut GroupState, env: &Env<'_>, names: &[&str]) -> String {
    let out = now(g.join(env, join("", names)));
    assert_eq!(out.error, E::MemberIdRequired.code());
    assert!(out.member_id.starts_with("client-"));
    out.member_id
}

/// A Stable group of `n` dynamic members at generation 1, at [`T`]; returns their ids, leader
/// first.
fn stable(f: &Fixture, g: &mut GroupState, n: usize) -> Vec<String> {
    let mut waiting = Vec::new();
    for _ in 0..n {
        let id = member_id(g, &f.at(secs(0)), &["range"]);
        waiting.push((
            id.clone(),
            parked(g.join(&f.at(secs(0)), join(&id, &["range"]))),
        ));
    }
    g.expire(&f.at(DELAY));
    g.expire(&f.at(T));
    let outcomes: Vec<(String, JoinOutcome)> = waiting
        .into_iter()
        .map(|(id, mut rx)| (id, answered(&mut rx)))
        .collect();
    let leader = outcomes[0].1.leader.clone();
    let mut ids = vec![leader.clone()];
    ids.extend(
        outcomes
            .iter()
            .map(|(id, _)| id.clone())
            .filter(|id| *id != leader),
    );
    let assignments = ids
        .iter()
        .map(|id| (id.clone(), Bytes::from(format!("a-{id}"))))
        .collect();
    let mut follower_syncs: Vec<_> = ids[1..]
        .iter()
        .map(|id| parked(g.sync(&f.at(T), sync(id, 1, vec![]))))
        .collect();
    let leader_sync = now(g.sync(&f.at(T), sync(&leader, 1, assignments)));
    assert_eq!(leader_sync.assignment, Bytes::from(format!("a-{leader}")));
    for (rx, id) in follower_syncs.iter_mut().zip(&ids[1..]) {
        assert_eq!(answered(rx).assignment, Bytes::from(format!("a-{id}")));
    }
    assert_eq!(g.phase(), GroupPhase::Stable);
    assert_eq!(g.generation(), 1);
    ids
}

#[test]
fn first_rebalance_waits_the_initial_delay_then_completes() {
    let f = Fixture::new();
    let mut g = GroupState::new(0);
    let id = member_id(&mut g, &f.at(secs(0)), &["range"]);
    let mut rx = parked(g.join(&f.at(secs(0)), join(&id, &["range"])));
    assert_eq!(g.phase(), GroupPhase::PreparingRebalance);
    g.expire(&f.at(DELAY - Duration::from_millis(1)));
    assert!(rx.try_recv().is_err(), "still inside the initial delay");
    g.expire(&f.at(DELAY));
    let out = answered(&mut rx);
    assert_eq!((out.error, out.generation), (0, 1));
    assert_eq!(out.leader, id);
    assert_eq!(out.protocol_name.as_deref(), Some("range"));
    assert_eq!(out.members.len(), 1, "the leader gets the member list");
    assert_eq!(g.phase(), GroupPhase::CompletingRebalance);
}

#[test]
fn members_joining_during_the_initial_delay_extend_it() {
    let f = Fixture::new();
    let mut g = GroupState::new(0);
    let a = member_id(&mut g, &f.at(secs(0)), &["range"]);
    let mut ra = parked(g.join(&f.at(secs(0)), join(&a, &["range"])));
    let b = member_id(&mut g, &f.at(secs(1)), &["range"]);
    let mut rb = parked(g.join(&f.at(secs(1)), join(&b, &["range"])));
    g.expire(&f.at(DELAY));
    assert!(
        ra.try_recv().is_err(),
        "a member joined: the delay is extended"
    );
    g.expire(&f.at(2 * DELAY));
    let (oa, ob) = (answered(&mut ra), answered(&mut rb));
    assert_eq!((oa.generation, ob.generation), (1, 1));
    assert_eq!(oa.leader, a);
    assert_eq!((oa.members.len(), ob.members.len()), (2, 0));
}

#[test]
fn pending_member_ids_hold_a_rebalance_until_used_or_expired() {
    let f = Fixture::new();
    let mut g = GroupState::new(0);
    let ids = stable(&f, &mut g, 1);
    // The leader rejoins (rebalance); a new member got an id but has not used it yet.
    let newcomer = member_id(&mut g, &f.at(T + secs(1)), &["range"]);
    let mut leader = parked(g.join(&f.at(T + secs(1)), join(&ids[0], &["range"])));
    assert_eq!(g.phase(), GroupPhase::PreparingRebalance);
    let n = g.join(&f.at(T + secs(2)), join(&newcomer, &["range"]));
    let (lo, no) = (answered(&mut leader), now(n));
    assert_eq!((lo.generation, no.generation), (2, 2));
    assert_eq!(lo.members.len(), 2);
    let assign = vec![
        (ids[0].clone(), Bytes::new()),
        (newcomer.clone(), Bytes::new()),
    ];
    let mut follower = parked(g.sync(&f.at(T + secs(2)), sync(&newcomer, 2, vec![])));
    now(g.sync(&f.at(T + secs(2)), sync(&ids[0], 2, assign)));
    answered(&mut follower);

    // An id never used expires after the session timeout and stops holding the rebalance.
    let t = T + secs(3);
    let ghost = member_id(&mut g, &f.at(t), &["range"]);
    let mut leader = parked(g.join(&f.at(t), join(&ids[0], &["range"])));
    let mut other = parked(g.join(&f.at(t), join(&newcomer, &["range"])));
    assert!(leader.try_recv().is_err());
    g.expire(&f.at(t + SESSION));
    assert_eq!(answered(&mut leader).generation, 3);
    assert_eq!(answered(&mut other).generation, 3);
    assert!(!g.has_pending_members(), "{ghost} expired");
}

#[test]
fn protocol_is_chosen_by_vote_among_common_protocols() {
    let f = Fixture::new();
    let mut g = GroupState::new(0);
    let mut waiting = Vec::new();
    for names in [
        &["range", "roundrobin", "sticky"][..],
        &["roundrobin", "range"][..],
        &["roundrobin", "range", "sticky"][..],
    ] {
        let id = member_id(&mut g, &f.at(secs(0)), names);
        waiting.push(parked(g.join(&f.at(secs(0)), join(&id, names))));
    }
    g.expire(&f.at(DELAY));
    g.expire(&f.at(T));
    for rx in &mut waiting {
        assert_eq!(answered(rx).protocol_name.as_deref(), Some("roundrobin"));
    }
    // A newcomer supporting none of the group's protocols, or another protocol type.
    let out = now(g.join(&f.at(secs(10)), join("", &["sticky"])));
    assert_eq!(out.error, E::InconsistentGroupProtocol.code());
    let mut connect = join("", &["range"]);
    connect.protocol_type = "connect".into();
    let out = now(g.join(&f.at(secs(10)), connect));
    assert_eq!(out.error, E::InconsistentGroupProtocol.code());
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let f = Fixture::new();
    let mut g = GroupState::new(0);
    let ids = stable(&f, &mut g, 3);
    let t = T + secs(2);
    let mut leader = parked(g.join(&f.at(t), join(&ids[0], &["range"])));
    // Followers heartbeating during the rebalance are told to rejoin.
    assert_eq!(
        g.heartbeat(&f.at(t), &ids[1], None, 1),
        E::RebalanceInProgress.code()
    );
    let mut one = parked(g.join(&f.at(t), join(&ids[1], &["range"])));
    // The third stays alive (heartbeats) but never rejoins.
    for k in 1..10 {
        let at = t + secs(2 * k);
        assert_eq!(
            g.heartbeat(&f.at(at), &ids[2], None, 1),
            E::RebalanceInProgress.code()
        );
        g.expire(&f.at(at));
    }
    g.expire(&f.at(t + REBALANCE - Duration::from_millis(1)));
    assert!(leader.try_recv().is_err());
    g.expire(&f.at(t + REBALANCE));
    let lo = answered(&mut leader);
    assert_eq!(lo.generation, 2);
    assert_eq!(lo.members.len(), 2, "{} was dropped", ids[2]);
    assert_eq!(answered(&mut one).generation, 2);
    assert_eq!(
        g.heartbeat(&f.at(t + REBALANCE), &ids[2], None, 1),
        E::UnknownMemberId.code()
    );
    assert_eq!(
        g.heartbeat(&f.at(t + REBALANCE), &ids[1], None, 1),
        E::IllegalGeneration.code()
    );
}

#[test]
fn silent_members_expire_after_the_session_timeout() {
    let f = Fixture::new();
    let mut g = GroupState::new(0);
    let ids = stable(&f, &mut g, 2);
    // Only the leader heartbeats.
    let mut t = T;
    while t < T + SESSION {
        t += secs(2);
        assert_eq!(g.heartbeat(&f.at(t), &ids[0], None, 1), 0);
        g.expire(&f.at(t));
    }
    assert_eq!(
        g.phase(),
        GroupPhase::PreparingRebalance,
        "the silent member expired"
    );
    assert_eq!(
        g.heartbeat(&f.at(t), &ids[1], None, 1),
        E::UnknownMemberId.code()
    );
    let out = now(g.join(&f.at(t), join(&ids[0], &["range"])));
    assert_eq!((out.generation, out.members.len()), (2, 1));
}

#[test]
fn a_member_waiting_in_a_rebalance_is_not_expired() {
    let f = Fixture::new();
    let mut g = GroupState::new(0);
    let ids = stable(&f, &mut g, 2);
    // Leader rejoins; the follower keeps heartbeating and rejoins late but in time.
    let mut leader = parked(g.join(&f.at(T + secs(1)), join(&ids[0], &["range"])));
    g.expire(&f.at(T + SESSION + secs(2)));
    assert_eq!(
        g.heartbeat(&f.at(T + SESSION + secs(2)), &ids[1], None, 1),
        E::UnknownMemberId.code(),
        "the follower itself stopped heartbeating and expired"
    );
    assert!(
        g.members.contains_key(&ids[0]),
        "the waiting leader is kept"
    );
    let out = answered(&mut leader);
    assert_eq!((out.generation, out.members.len()), (2, 1));
}

#[test]
fn followers_wait_for_the_leader_and_late_syncers_are_removed() {
    let f = Fixture::new();
    let mut g = GroupState::new(0);
    let ids = stable(&f, &mut g, 3);
    let t = T + secs(2);
    let replies: Vec<_> = ids
        .iter()
        .map(|id| g.join(&f.at(t), join(id, &["range"])))
        .collect();
    let outs: Vec<JoinOutcome> = replies.into_iter().map(now).collect();
    assert!(outs.iter().all(|o| o.generation == 2));
    // One follower syncs; the leader assigns only to itself; the third never syncs.
    let mut follower = parked(g.sync(&f.at(t), sync(&ids[1], 2, vec![])));
    let leader = now(g.sync(
        &f.at(t),
        sync(
            &ids[0],
            2,
            vec![(ids[0].clone(), Bytes::from_static(b"all"))],
        ),
    ));
    assert_eq!(leader.assignment, Bytes::from_static(b"all"));
    let f_out = answered(&mut follower);
    assert_eq!(
        (f_out.error, f_out.assignment.len()),
        (0, 0),
        "missing → empty"
    );
    assert_eq!(g.phase(), GroupPhase::Stable);
    for k in 1..4 {
        for id in &ids {
            assert_eq!(g.heartbeat(&f.at(t + secs(5 * k)), id, None, 2), 0);
        }
    }
    g.expire(&f.at(t + REBALANCE));
    assert_eq!(
        g.phase(),
        GroupPhase::PreparingRebalance,
        "late syncer removed"
    );
    assert_eq!(
        g.heartbeat(&f.at(t + REBALANCE), &ids[2], None, 2),
        E::UnknownMemberId.code()
    );
}

#[test]
fn static_member_rejoining_keeps_its_assignment_without_a_rebalance() {
    let f = Fixture::new();
    let mut g = GroupState::new(0);
    let mut waiting = Vec::new();
    let mut first = Vec::new();
    for instance in ["i-0", "i-1"] {
        // Static members join at once, without the KIP-394 round trip.
        waiting.push(parked(
            g.join(&f.at(secs(0)), static_join(instance, &["range"])),
        ));
    }
    g.expire(&f.at(DELAY));
    g.expire(&f.at(T));
    for rx in &mut waiting {
        first.push(answered(rx));
    }
    let leader = first[0].leader.clone();
    let follower = first
        .iter()
        .map(|o| o.member_id.clone())
        .find(|m| *m != leader)
        .unwrap();
    let assign = vec![
        (leader.clone(), Bytes::from_static(b"L")),
        (follower.clone(), Bytes::from_static(b"F")),
    ];
    let mut fs = parked(g.sync(&f.at(T), sync(&follower, 1, vec![])));
    now(g.sync(&f.at(T), sync(&leader, 1, assign)));
    answered(&mut fs);
    let follower_instance = if follower.starts_with("i-1") {
        "i-1"
    } else {
        "i-0"
    };

    // The follower restarts: new member id, same instance id, same protocols.
    let out = now(g.join(&f.at(secs(5)), static_join(follower_instance, &["range"])));
    assert_eq!(out.error, 0);
    assert_ne!(out.member_id, follower);
    assert_eq!(out.generation, 1, "no rebalance");
    assert!(!out.skip_assignment);
    assert_eq!(g.phase(), GroupPhase::Stable);
    let mut s = sync(&out.member_id, 1, vec![]);
    s.instance_id = Some(follower_instance.into());
    assert_eq!(
        now(g.sync(&f.at(secs(5)), s)).assignment,
        Bytes::from_static(b"F")
    );
    // The old incarnation is fenced.
    assert_eq!(
        g.heartbeat(&f.at(secs(5)), &follower, Some(follower_instance), 1),
        E::FencedInstanceId.code()
    );

    // The leader restarts: a v9 client learns it leads but must skip the assignment.
    let leader_instance = if follower_instance == "i-0" {
        "i-1"
    } else {
        "i-0"
    };
    let out = now(g.join(&f.at(secs(6)), static_join(leader_instance, &["range"])));
    assert_eq!(
        (out.generation, out.leader.clone()),
        (1, out.member_id.clone())
    );
    assert!(out.skip_assignment);
    assert_eq!(out.members.len(), 2);
    // An older client is told the previous leader id so it does not run the assignor.
    let mut old_client = static_join(leader_instance, &["range"]);
    old_client.supports_skip_assignment = false;
    let previous = out.member_id.clone();
    let out = now(g.join(&f.at(secs(7)), old_client));
    assert_eq!(out.leader, previous);
    assert!(out.members.is_empty() && !out.skip_assignment);
    assert_eq!(g.generation(), 1);
}

#[test]
fn a_static_member_changing_protocols_triggers_a_rebalance() {
    let f = Fixture::new();
    let mut g = GroupState::new(0);
    let mut rx = parked(g.join(&f.at(secs(0)), static_join("s", &["range", "roundrobin"])));
    g.expire(&f.at(DELAY));
    let o = answered(&mut rx);
    assert_eq!(o.protocol_name.as_deref(), Some("range"));
    let mut sp = sync(&o.member_id, 1, vec![(o.member_id.clone(), Bytes::new())]);
    sp.instance_id = Some("s".into());
    now(g.sync(&f.at(DELAY), sp));
    let out = now(g.join(&f.at(secs(5)), static_join("s", &["roundrobin", "range"])));
    assert_eq!(out.generation, 2);
    assert_eq!(out.protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn offset_commit_validation_follows_kafka() {
    let f = Fixture::new();
    let mut g = GroupState::new(0);
    assert_eq!(
        g.validate_offset_commit(&f.at(secs(0)), "", None, -1),
        Ok(())
    );
    let ids = stable(&f, &mut g, 2);
    let env = f.at(T + secs(1));
    assert_eq!(
        g.validate_offset_commit(&env, "", None, -1),
        Err(E::UnknownMemberId.code()),
        "simple commits only while the group has no members"
    );
    assert_eq!(g.validate_offset_commit(&env, &ids[1], None, 1), Ok(()));
    assert_eq!(
        g.validate_offset_commit(&env, &ids[1], None, 0),
        Err(E::IllegalGeneration.code())
    );
    assert_eq!(
        g.validate_offset_commit(&env, "stranger", None, 1),
        Err(E::UnknownMemberId.code())
    );
    // During PreparingRebalance the previous generation may still commit …
    let mut rx0 = parked(g.join(&env, join(&ids[0], &["range"])));
    assert_eq!(g.validate_offset_commit(&env, &ids[1], None, 1), Ok(()));
    // … but not while waiting for the assignment.
    now(g.join(&env, join(&ids[1], &["range"])));
    answered(&mut rx0);
    assert_eq!(g.phase(), GroupPhase::CompletingRebalance);
    assert_eq!(
        g.validate_offset_commit(&env, &ids[1], None, 2),
        Err(E::RebalanceInProgress.code())
    );
}

#[test]
fn the_group_size_is_capped() {
    let f = Fixture::with_config(GroupConfig {
        initial_rebalance_delay: DELAY,
        max_size: 2,
        ..GroupConfig::default()
    });
    let mut g = GroupState::new(0);
    let ids = stable(&f, &mut g, 2);
    let out = now(g.join(&f.at(T + secs(1)), join("", &["range"])));
    assert_eq!(out.error, E::GroupMaxSizeReached.code());
    // Existing members still rejoin.
    let mut rx = parked(g.join(&f.at(T + secs(1)), join(&ids[0], &["range"])));
    now(g.join(&f.at(T + secs(1)), join(&ids[1], &["range"])));
    assert_eq!(answered(&mut rx).generation, 2);
}

#[test]
fn leaving_by_member_id_instance_id_or_pending_id() {
    let f = Fixture::new();
    let mut g = GroupState::new(0);
    let mut rx = [
        parked(g.join(&f.at(secs(0)), static_join("s", &["range"]))),
        parked(g.join(&f.at(secs(0)), join("", &["range"]).tap_v3())),
    ];
    g.expire(&f.at(DELAY));
    g.expire(&f.at(T));
    let outs: Vec<JoinOutcome> = rx.iter_mut().map(answered).collect();
    let dynamic = outs
        .iter()
        .map(|o| o.member_id.clone())
        .find(|m| m.starts_with("client-"))
        .unwrap();
    let pending = member_id(&mut g, &f.at(T + secs(1)), &["range"]);
    let codes = g
        .leave(
            &f.at(T + secs(1)),
            &[
                LeavingMember {
                    member_id: String::new(),
                    instance_id: Some("s".into()),
                },
                LeavingMember {
                    member_id: pending,
                    instance_id: None,
                },
                LeavingMember {
                    member_id: "nobody".into(),
                    instance_id: None,
                },
            ],
        )
        .unwrap();
    assert_eq!(codes, vec![0, 0, E::UnknownMemberId.code()]);
    let codes = g
        .leave(
            &f.at(T + secs(1)),
            &[LeavingMember {
                member_id: dynamic,
                instance_id: None,
            }],
        )
        .unwrap();
    assert_eq!(codes, vec![0]);
    // Everyone left during CompletingRebalance: the next completion empties the group.
    g.expire(&f.at(T + secs(1) + REBALANCE));
    assert_eq!(g.phase(), GroupPhase::Empty);
    assert_eq!(g.generation(), 2);
    let stored = f.store.read("g", |s| s.and_then(|s| s.meta.clone()));
    assert_eq!(stored.map(|m| (m.generation, m.protocol)), Some((2, None)));
}

#[test]
fn ten_members_joining_together_converge_in_one_generation() {
    let f = Fixture::new();
    let mut g = GroupState::new(0);
    let ids: Vec<String> = (0..10)
        .map(|_| member_id(&mut g, &f.at(secs(0)), &["range"]))
        .collect();
    let mut waiting: Vec<_> = ids
        .iter()
        .map(|id| parked(g.join(&f.at(secs(1)), join(id, &["range"]))))
        .collect();
    g.expire(&f.at(secs(1) + DELAY));
    g.expire(&f.at(secs(1) + DELAY * 2));
    let outs: Vec<JoinOutcome> = waiting.iter_mut().map(answered).collect();
    assert!(outs.iter().all(|o| o.error == 0 && o.generation == 1));
    assert_eq!(outs.iter().filter(|o| !o.members.is_empty()).count(), 1);
}

trait TapV3 {
    fn tap_v3(self) -> Self;
}

impl TapV3 for JoinParams {
    /// A JoinGroup older than v4: no MEMBER_ID_REQUIRED round trip.
    fn tap_v3(mut self) -> Self {
        self.require_known_member_id = false;
        self
    }
}
