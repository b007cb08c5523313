//! Seed corpora of the fuzz targets, generated from code (`veritas-reliability fuzz-seeds`) and
//! committed under `fuzz/corpus/<target>/seed-*`.
//!
//! Seeds are valid inputs of every shape a target understands, so the fuzzer starts from deep
//! inside the decoders instead of rediscovering framing, CRCs and JSON by chance.

use std::path::Path;

use anyhow::Context;
use veritas_detect::shared::SharedTable;
use veritas_detect::{Engine, EngineConfig};
use veritas_events::{decode_event, encode_event, Generator, GeneratorConfig, RecordContext};
use veritas_legacy::convert::{from_v2_batches, DownConversion};
use veritas_legacy::Magic;
use veritas_log::batch::builder::{BatchBuilder, Record};
use veritas_log::batch::BatchIter;

use crate::detector_crash::invalid_events;
use crate::targets::{request_seeds, LEGACY_VERSIONS};

/// One seed: target, file name, bytes.
pub type Seed = (&'static str, String, Vec<u8>);

fn batch(i: usize, idempotent: bool) -> Vec<u8> {
    let mut b = BatchBuilder::new(1_700_000_000_000 + i as i64);
    if idempotent {
        b = b.idempotent(1000 + i as i64, 0, i as i32 * 3);
    }
    for j in 0..(i % 4 + 1) {
        let mut r = Record::new(
            (j % 2 == 0).then(|| format!("card-{i}-{j}").into_bytes()),
            Some(format!("{{\"amount\":{}}}", i * 10 + j).into_bytes()),
        )
        .with_timestamp(1_700_000_000_000 + (i * 10 + j) as i64);
        if j == 1 {
            r = r.with_header("veritas-label", Some(b"1".to_vec()));
        }
        b.push(r);
    }
    b.build()
}

/// Batches with dense offsets from 0, concatenated (a segment's contents).
fn segment(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = 0i64;
    for i in 0..n {
        let mut b = batch(i, i % 2 == 1);
        b[..8].copy_from_slice(&offset.to_be_bytes());
        offset += (i % 4 + 1) as i64;
        out.extend(b);
    }
    out
}

/// The sarama request bodies in `legacy_data` (`crates/legacy/tests/data/sarama-1.22.1`).
fn sarama(legacy_data: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(legacy_data).with_context(|| legacy_data.display().to_string())? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "bin") {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            v.push((name, std::fs::read(&p)?));
        }
    }
    v.sort();
    Ok(v)
}

/// (api, version) of a sarama file name such as `produce_v2_gzip` or `fetch_request_v3`.
fn sarama_api(name: &str) -> Option<(kafka_protocol::messages::ApiKey, i16)> {
    use kafka_protocol::messages::ApiKey;
    let api = [
        ("produce", ApiKey::Produce),
        ("fetch", ApiKey::Fetch),
        ("list_offsets", ApiKey::ListOffsets),
        ("offset_commit", ApiKey::OffsetCommit),
        ("offset_fetch", ApiKey::OffsetFetch),
    ]
    .into_iter()
    .find(|(p, _)| name.starts_with(p))?
    .1;
    let v = name.split("_v").nth(1)?.split('_').next()?.parse().ok()?;
    Some((api, v))
}

/// The message set inside a Produce v0–2 body (one topic, one partition).
fn produce_set(body: &[u8], version: i16) -> Option<Vec<u8>> {
    let mut pos = if version >= 3 { 2 } else { 0 } + 2 + 4 + 4; // acks, timeout, topic count
    let topic_len = i16::from_be_bytes([*body.get(pos)?, *body.get(pos + 1)?]) as usize;
    pos += 2 + topic_len + 4 + 4; // topic, partition count, partition
    let size = i32::from_be_bytes(body.get(pos..pos + 4)?.try_into().ok()?) as usize;
    body.get(pos + 4..pos + 4 + size).map(<[u8]>::to_vec)
}

/// Every generated seed.
pub fn all(legacy_data: &Path) -> anyhow::Result<Vec<Seed>> {
    let mut out: Vec<Seed> = Vec::new();
    // request_frame: every modern request at every advertised version, plus the legacy
    // versions as sarama writes them, each behind a v1 header, one with its size prefix.
    for (name, frame) in request_seeds() {
        out.push(("request_frame", name, frame));
    }
    let sarama = sarama(legacy_data)?;
    for (name, body) in &sarama {
        let Some((api, version)) = sarama_api(name) else {
            continue;
        };
        let mut frame = Vec::new();
        frame.extend((api as i16).to_be_bytes());
        frame.extend(version.to_be_bytes());
        frame.extend(7i32.to_be_bytes());
        frame.extend(6i16.to_be_bytes());
        frame.extend(b"sarama");
        frame.extend(body);
        let mut sized = (frame.len() as i32).to_be_bytes().to_vec();
        sized.extend(&frame);
        out.push(("request_frame", format!("sarama-{name}"), frame));
        out.push(("request_frame", format!("sarama-{name}-sized"), sized));
        if let Some(&(_, _, _, selector)) = LEGACY_VERSIONS.iter().find(|(k, ..)| *k == api) {
            let mut data = vec![selector << 2 | (version as u8 & 3)];
            data.extend(body);
            out.push(("legacy_request", name.clone(), data));
        }
        if api == kafka_protocol::messages::ApiKey::Produce {
            if let Some(set) = produce_set(body, version) {
                out.push(("legacy_message_set", format!("sarama-{name}"), set));
            }
        }
    }
    // record_batch and log_recover: single batches, idempotent ones, a segment.
    for i in 0..4 {
        out.push(("record_batch", format!("batch-{i}"), batch(i, false)));
        out.push(("record_batch", format!("idempotent-{i}"), batch(i, true)));
    }
    out.push(("record_batch", "three-batches".into(), segment(3)));
    out.push(("log_recover", "segment-1".into(), segment(1)));
    out.push(("log_recover", "segment-6".into(), segment(6)));
    let mut torn = segment(6);
    torn.truncate(torn.len() - 17);
    out.push(("log_recover", "segment-torn".into(), torn));
    // legacy_message_set: v2 batches down-converted to magic 0 and 1.
    let seg = segment(4);
    for (magic, tag) in [(Magic::V0, "v0"), (Magic::V1, "v1")] {
        if let Ok(set) = from_v2_batches(&seg, magic, &DownConversion::from_offset(0)) {
            out.push(("legacy_message_set", format!("down-{tag}"), set.to_vec()));
        }
    }
    // event_json: generated events, the tutorial's shape, invalid ones.
    let ctx = RecordContext::new("bankaccount", 0, 0, 1_700_000_000_000);
    let gen = Generator::new(GeneratorConfig {
        customers: 20,
        days: Some(3),
        fraud_rate: 0.2,
        ..GeneratorConfig::default()
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let events: Vec<_> = gen.take(200).collect();
    for (i, e) in events.iter().enumerate().filter(|(i, _)| i % 20 == 0) {
        out.push(("event_json", format!("event-{i}"), encode_event(&e.tx)));
    }
    out.push((
        "event_json",
        "tutorial".into(),
        br#"{"FirstName":"Ada","LastName":"Lovelace","CreditCardNumber":"4111111111111111","Amount":42.5}"#
            .to_vec(),
    ));
    for (i, bad) in invalid_events()
        .into_iter()
        .enumerate()
        .filter(|(_, b)| b.len() < 1024)
    {
        out.push(("event_json", format!("invalid-{i}"), bad));
    }
    // detector_state: a snapshot and a changelog of an engine that saw the events.
    let mut engine = Engine::new(EngineConfig::default());
    for e in &events {
        let tx = decode_event(&encode_event(&e.tx), &ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
        engine.process(&tx);
    }
    let mut snap = vec![0u8];
    snap.extend(engine.snapshot());
    out.push(("detector_state", "snapshot".into(), snap));
    let mut log = vec![1u8];
    for entry in engine.drain_changelog().into_iter().take(40) {
        let Ok(klen) = u8::try_from(entry.key.len()) else {
            continue;
        };
        log.push(klen);
        log.extend(&entry.key);
        match entry.value {
            Some(v) if v.len() < usize::from(u16::MAX) => {
                log.extend((v.len() as u16).to_be_bytes());
                log.extend(v);
            }
            _ => log.extend(u16::MAX.to_be_bytes()),
        }
    }
    out.push(("detector_state", "changelog".into(), log));
    // ... and a merchant table over two partitions that read the same events.
    let cfg = EngineConfig::default();
    let mut table = SharedTable::new(&cfg, 2, cfg.shared_interval_ms());
    for (i, e) in events.iter().enumerate() {
        table.offer((i % 2) as u32, i as i64 / 2, &e.tx);
    }
    let mut checkpoint = vec![2u8];
    checkpoint.extend(table.checkpoint());
    out.push(("detector_state", "table".into(), checkpoint));
    Ok(out)
}

/// Batches taken from a real broker data directory (the torture's: every compression codec
/// its producers use), at most `per_codec` of each codec, as `record_batch` and `log_recover`
/// seeds.
pub fn from_data_dir(data_dir: &Path, per_codec: usize) -> anyhow::Result<Vec<Seed>> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashMap::new();
    let mut stack = vec![data_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "log") {
                continue;
            }
            let bytes = std::fs::read(&p)?;
            for b in BatchIter::new(&bytes).map_while(Result::ok) {
                let codec = format!("{:?}", b.header.compression()).to_lowercase();
                let n = seen.entry(codec.clone()).or_insert(0usize);
                if *n < per_codec && b.bytes.len() < 4096 {
                    *n += 1;
                    out.push((
                        "record_batch",
                        format!("broker-{codec}-{n}"),
                        b.bytes.to_vec(),
                    ));
                    out.push(("log_recover", format!("broker-{codec}-{n}"), {
                        let mut v = b.bytes.to_vec();
                        v[..8].copy_from_slice(&0i64.to_be_bytes());
                        v
                    }));
                }
            }
        }
    }
    Ok(out)
}
