//! Checkpoints of a [`SharedTable`]: the whole table as one byte string.
//!
//! A detector instance builds its table by reading every input partition. Without a
//! checkpoint it would read them from their start on every start, which takes longer as
//! the topic grows and — once retention has deleted the oldest events — gives a different
//! table than the one the running instances hold. [`SharedTable::checkpoint`] encodes
//! everything the table's future depends on (the reduced engine, the live undo log, the
//! frozen boundaries, the per-partition cursors and the events waiting for the frontier);
//! [`SharedTable::restore`] rebuilds it. A table restored and then offered the events after
//! the checkpoint's read positions freezes exactly the snapshots of an uninterrupted one.
//!
//! The encoding is deterministic (every map written in key order) and decoded defensively:
//! bytes come from a Kafka topic, so corrupt input is an error, never a panic. Layout, all
//! little-endian (see [`crate::codec`]):
//!
//! ```text
//! "VTMT" version:u8
//! lateness_ms:i64 interval_ms:i64 idle_ttl_days:u64 max_merchants:u64 max_clock_step_secs:u64
//! stats: offered applied late missed frozen (u64 each)
//! cursors: n:u32 { max_ms:i64 released:u8 }
//! next_boundary, first_boundary: opt i64    applied_ms:i64    hold_ms: opt i64
//! engine: bytes (an Engine::snapshot)        live undo log: undo
//! frozen: n:u32 { boundary_ms:i64 categories: n:u32 { id:u32 welford } undo }
//! pending: n:u32 { partition:u32 offset:i64 transaction: bytes (canonical JSON) }
//! undo = n:u32 { merchant:str present:u8 [merchant record] }
//! opt i64 = present:u8 [i64]
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use veritas_events::Transaction;

use super::{Cursor, Frozen, Pending, SharedStats, SharedTable};
use crate::codec::{Reader, Writer};
use crate::engine::{Engine, EngineConfig, MAX_GLOBAL_CATEGORIES};
use crate::error::{DecodeError, DetectError};
use crate::hash::fnv1a64;
use crate::state::{decode_category, encode_category, MerchantState};

const MAGIC: &[u8; 4] = b"VTMT";
const VERSION: u8 = 1;
/// Bounds on counts read from a checkpoint (they guard allocations on corrupt input).
const MAX_PARTITIONS: usize = 1 << 16;
const MAX_ENTRIES: usize = 1 << 28;

impl SharedTable {
    /// Encode the whole table (see the module docs). Equal tables give equal bytes.
    pub fn checkpoint(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(MAGIC);
        w.u8(VERSION);
        let cfg = &self.engine.cfg;
        w.i64(self.lateness_ms);
        w.i64(self.interval_ms);
        w.u64(cfg.idle_ttl_days);
        w.u64(cfg.max_merchants as u64);
        w.u64(cfg.max_clock_step_secs);
        let s = &self.stats;
        for v in [s.offered, s.applied, s.late, s.missed, s.frozen] {
            w.u64(v);
        }
        w.len(self.cursors.len());
        for c in &self.cursors {
            w.i64(c.max_ms);
            w.u8(u8::from(c.released));
        }
        opt_i64(&mut w, self.next_boundary);
        opt_i64(&mut w, self.first_boundary);
        w.i64(self.applied_ms);
        opt_i64(&mut w, self.hold_ms);
        w.bytes(&self.engine.snapshot());
        encode_undo(&mut w, self.engine.merchant_undo.as_ref());
        w.len(self.frozen.len());
        for f in &self.frozen {
            w.i64(f.boundary_ms);
            let mut cats: Vec<_> = f.categories.iter().collect();
            cats.sort_unstable_by_key(|e| *e.0);
            w.len(cats.len());
            for (k, s) in cats {
                w.u32(*k);
                encode_category(s, &mut w);
            }
            encode_undo(&mut w, Some(&f.undo));
        }
        let mut pending: Vec<&Pending> = self.pending.iter().map(|Reverse(p)| p).collect();
        pending.sort_unstable_by_key(|p| p.key);
        w.len(pending.len());
        for p in pending {
            w.u32(p.key.2);
            w.i64(p.key.3);
            // A transaction serializes infallibly (plain strings, numbers and an enum), and
            // the workspace's serde_json round-trips floats exactly.
            w.bytes(&serde_json::to_vec(&*p.tx).unwrap_or_default());
        }
        w.into_bytes()
    }

    /// Rebuild a table from [`SharedTable::checkpoint`] bytes. `cfg` and `interval_ms` are
    /// what [`SharedTable::new`] would be given: a checkpoint built under a different
    /// lateness bound, interval or eviction setting is refused
    /// ([`DetectError::Config`]), since its state would not be the one this configuration
    /// builds.
    pub fn restore(
        cfg: &EngineConfig,
        interval_ms: i64,
        bytes: &[u8],
    ) -> Result<SharedTable, DetectError> {
        let mut table = SharedTable::new(cfg, 1, interval_ms);
        let mut r = Reader::new(bytes);
        if r.bytes()? != MAGIC {
            return Err(DecodeError::BadMagic.into());
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            }
            .into());
        }
        let built = (r.i64()?, r.i64()?, r.u64()?, r.u64()?, r.u64()?);
        let wanted = (
            table.lateness_ms,
            table.interval_ms,
            cfg.idle_ttl_days,
            cfg.max_merchants as u64,
            cfg.max_clock_step_secs,
        );
        if built != wanted {
            return Err(DetectError::Config(format!(
                "the merchant table checkpoint was built with (lateness ms, interval ms, idle \
                 days, max merchants, max clock step s) = {built:?}, this detector uses {wanted:?}"
            )));
        }
        table.stats = SharedStats {
            offered: r.u64()?,
            applied: r.u64()?,
            late: r.u64()?,
            missed: r.u64()?,
            frozen: r.u64()?,
        };
        let n = r.len(MAX_PARTITIONS, "table partition count")?;
        if n == 0 {
            return Err(DecodeError::Invalid("table partition count").into());
        }
        table.cursors = (0..n)
            .map(|_| {
                Ok(Cursor {
                    max_ms: time_or_min(&mut r)?,
                    released: flag(&mut r)?,
                })
            })
            .collect::<Result<_, DecodeError>>()?;
        table.next_boundary = read_opt_ms(&mut r)?;
        table.first_boundary = read_opt_ms(&mut r)?;
        table.applied_ms = time_or_min(&mut r)?;
        table.hold_ms = read_opt_ms(&mut r)?;
        let mut engine = Engine::restore(table.engine.cfg.clone(), r.bytes()?)?;
        engine.merchant_undo = Some(decode_undo(&mut r)?);
        table.engine = engine;
        let n = r.len(super::MAX_KEPT, "frozen boundary count")?;
        let mut frozen = VecDeque::with_capacity(n);
        for _ in 0..n {
            let boundary_ms = r.ms()?;
            if let Some(prev) = frozen.back().map(|f: &Frozen| f.boundary_ms) {
                // Lookups index the deque by whole intervals from the oldest boundary.
                if boundary_ms != prev + table.interval_ms {
                    return Err(
                        DecodeError::Invalid("frozen boundaries not one interval apart").into(),
                    );
                }
            }
            let cats = r.len(MAX_GLOBAL_CATEGORIES, "frozen category count")?;
            let mut categories = HashMap::with_capacity(cats);
            for _ in 0..cats {
                let k = r.u32()?;
                categories.insert(k, decode_category(&mut r)?);
            }
            let undo = decode_undo(&mut r)?;
            frozen.push_back(Frozen {
                boundary_ms,
                categories,
                undo,
            });
        }
        table.frozen = frozen;
        let n = r.len(MAX_ENTRIES, "pending event count")?;
        let mut pending = BinaryHeap::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let partition = r.u32()?;
            if partition as usize >= table.cursors.len() {
                return Err(DecodeError::Invalid("pending event partition").into());
            }
            let offset = r.i64()?;
            let tx: Transaction = serde_json::from_slice(r.bytes()?)
                .map_err(|_| DecodeError::Invalid("pending transaction"))?;
            let ms = tx.timestamp.timestamp_millis();
            pending.push(Reverse(Pending {
                key: (ms, fnv1a64(tx.transaction_id.as_bytes()), partition, offset),
                tx: Box::new(tx),
            }));
        }
        table.pending = pending;
        r.finish()?;
        Ok(table)
    }

    /// Wait for `partitions` input partitions from now on (a topic grown since the table
    /// was built or checkpointed). Never shrinks.
    pub fn grow(&mut self, partitions: u32) {
        let n = partitions as usize;
        if n > self.cursors.len() {
            self.cursors.resize(
                n,
                Cursor {
                    max_ms: i64::MIN,
                    released: false,
                },
            );
        }
    }
}

fn opt_i64(w: &mut Writer, v: Option<i64>) {
    match v {
        Some(v) => {
            w.u8(1);
            w.i64(v);
        }
        None => w.u8(0),
    }
}

fn flag(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::Invalid("flag")),
    }
}

fn read_opt_ms(r: &mut Reader<'_>) -> Result<Option<i64>, DecodeError> {
    Ok(if flag(r)? { Some(r.ms()?) } else { None })
}

/// A time, or `i64::MIN` for "none yet".
fn time_or_min(r: &mut Reader<'_>) -> Result<i64, DecodeError> {
    let v = r.i64()?;
    if v == i64::MIN {
        return Ok(v);
    }
    if v.abs() > crate::codec::MAX_ABS_TIME_MS {
        return Err(DecodeError::Invalid("time"));
    }
    Ok(v)
}

fn encode_undo(w: &mut Writer, undo: Option<&HashMap<String, Option<MerchantState>>>) {
    let mut entries: Vec<_> = undo.into_iter().flatten().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    w.len(entries.len());
    for (k, state) in entries {
        w.str(k);
        match state {
            Some(m) => {
                w.u8(1);
                m.encode(w);
            }
            None => w.u8(0),
        }
    }
}

fn decode_undo(r: &mut Reader<'_>) -> Result<HashMap<String, Option<MerchantState>>, DecodeError> {
    let n = r.len(MAX_ENTRIES, "undo log length")?;
    let mut undo = HashMap::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let k = r.string()?;
        let state = if flag(r)? {
            Some(MerchantState::decode(r)?)
        } else {
            None
        };
        undo.insert(k, state);
    }
    Ok(undo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::partition_of;
    use crate::shared::tests::traffic;
    use crate::shared::Lookup;

    const PARTITIONS: u32 = 4;
    const INTERVAL: i64 = 900_000;

    /// The events of `PARTITIONS` partitions (keyed by card) as one reader interleaves
    /// them: each partition in order, chunks of pseudo-random size from each in turn.
    fn interleaved(events: &[Transaction]) -> Vec<(u32, i64, &Transaction)> {
        let mut queues: Vec<Vec<&Transaction>> = vec![Vec::new(); PARTITIONS as usize];
        for tx in events {
            queues[partition_of(&tx.card_number, PARTITIONS) as usize].push(tx);
        }
        let mut read = vec![0usize; PARTITIONS as usize];
        let mut out = Vec::with_capacity(events.len());
        let mut rng = 7u64;
        while out.len() < events.len() {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let p = ((rng >> 33) % u64::from(PARTITIONS)) as usize;
            for _ in 0..1 + (rng >> 40) % 150 {
                let Some(tx) = queues[p].get(read[p]) else {
                    break;
                };
                out.push((p as u32, read[p] as i64, *tx));
                read[p] += 1;
            }
        }
        out
    }

    /// Offers `order[from..]` to `table`; after each event, what a lookup as of its time
    /// finds for its merchant and category (the state scoring would read).
    fn feed(
        table: &mut SharedTable,
        order: &[(u32, i64, &Transaction)],
        from: usize,
    ) -> Vec<String> {
        let mut seen = Vec::new();
        for &(p, offset, tx) in &order[from..] {
            table.offer(p, offset, tx);
            let v = crate::engine::TxView::new(tx);
            let key = v.merchant_id.unwrap_or_default();
            seen.push(match table.lookup(v.ms) {
                Lookup::Ready(s) => {
                    // Encoded, so a flag that is not state (`dirty`) does not count.
                    let mut w = Writer::new();
                    if let Some(m) = s.merchant(key) {
                        m.encode(&mut w);
                    }
                    if let Some(c) = s.category(v.category) {
                        encode_category(c, &mut w);
                    }
                    format!("{:?} {:?}", s.boundary_ms(), w.into_bytes())
                }
                Lookup::NotYet => "not yet".to_owned(),
                Lookup::Expired(_) => "expired".to_owned(),
            });
        }
        seen
    }

    #[test]
    fn a_restored_table_continues_exactly_as_the_uninterrupted_one() {
        let events = traffic(5);
        let order = interleaved(&events);
        let cfg = EngineConfig::default();
        let mut whole = SharedTable::new(&cfg, PARTITIONS, INTERVAL);
        let uninterrupted = feed(&mut whole, &order, 0);
        assert!(whole.stats().frozen > 100, "{:?}", whole.stats());
        let expected = whole.checkpoint();
        // Before anything is frozen, mid-stream, and near the end.
        for cut in [3, order.len() / 3, order.len() * 4 / 5] {
            let mut prefix = SharedTable::new(&cfg, PARTITIONS, INTERVAL);
            let before = feed(&mut prefix, &order[..cut], 0);
            let bytes = prefix.checkpoint();
            let mut restored = SharedTable::restore(&cfg, INTERVAL, &bytes).unwrap();
            assert_eq!(
                restored.checkpoint(),
                bytes,
                "cut {cut}: restore is not exact"
            );
            assert!(
                restored.pending() > 0 || cut < 10,
                "cut {cut}: nothing pending"
            );
            let after = feed(&mut restored, &order, cut);
            assert_eq!(before.len() + after.len(), uninterrupted.len());
            assert_eq!(before[..], uninterrupted[..cut], "cut {cut}");
            assert_eq!(
                after[..],
                uninterrupted[cut..],
                "cut {cut}: state read after the restore"
            );
            assert_eq!(restored.stats(), whole.stats(), "cut {cut}");
            assert_eq!(restored.checkpoint(), expected, "cut {cut}: final state");
        }
    }

    #[test]
    fn a_checkpoint_from_another_configuration_is_refused() {
        let events = traffic(1);
        let order = interleaved(&events[..500]);
        let cfg = EngineConfig::default();
        let mut table = SharedTable::new(&cfg, PARTITIONS, INTERVAL);
        feed(&mut table, &order, 0);
        let bytes = table.checkpoint();
        let other = EngineConfig {
            lateness_secs: 60,
            ..cfg.clone()
        };
        assert!(matches!(
            SharedTable::restore(&other, INTERVAL, &bytes),
            Err(DetectError::Config(_))
        ));
        assert!(matches!(
            SharedTable::restore(&cfg, 2 * INTERVAL, &bytes),
            Err(DetectError::Config(_))
        ));
        assert!(SharedTable::restore(&cfg, INTERVAL, &bytes).is_ok());
    }

    #[test]
    fn corrupt_checkpoints_are_errors_not_panics() {
        let events = traffic(1);
        let order = interleaved(&events[..400]);
        let cfg = EngineConfig::default();
        let mut table = SharedTable::new(&cfg, PARTITIONS, INTERVAL);
        feed(&mut table, &order, 0);
        let bytes = table.checkpoint();
        for len in (0..bytes.len())
            .step_by(37)
            .chain(bytes.len().saturating_sub(40)..bytes.len())
        {
            assert!(
                SharedTable::restore(&cfg, INTERVAL, &bytes[..len]).is_err(),
                "prefix {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SharedTable::restore(&cfg, INTERVAL, &longer).is_err());
        let mut rng = 3u64;
        for _ in 0..2000 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut b = bytes.clone();
            let i = (rng >> 20) as usize % b.len();
            b[i] ^= 1 << ((rng >> 8) % 8);
            // Either refused or a table that encodes and looks up without panicking.
            if let Ok(t) = SharedTable::restore(&cfg, INTERVAL, &b) {
                let _ = t.checkpoint();
                let _ = t.lookup(0);
                let _ = t.frontier_ms();
            }
        }
    }
}
