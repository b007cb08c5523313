//! State snapshots and the keyed changelog.
//!
//! Two ways to checkpoint an [`Engine`] (one engine per Kafka partition):
//!
//! * **Snapshot**: [`Engine::snapshot`] encodes the whole state as one byte string;
//!   [`Engine::restore`] rebuilds it.
//! * **Keyed changelog**: [`Engine::drain_changelog`] returns one record per piece of
//!   state changed since the previous drain (a card, a merchant, a category, the clock),
//!   keyed so that a compacted topic keeps the latest value per key; evictions produce
//!   tombstones (`value: None`) when [`EngineConfig::track_changelog`] is on.
//!   [`Engine::apply_changelog`] replays such records into a fresh engine.
//!
//! Either way, a restored engine produces bit-identical features (and so scores) to an
//! uninterrupted one. Formats are versioned and decoded defensively (no panics on
//! corrupt bytes). See `docs/detection.md` for the byte layout.

use crate::codec::{Reader, Writer};
use crate::engine::{Engine, EngineConfig, EngineStats};
use crate::error::{DecodeError, DetectError};
use crate::state::{decode_category, encode_category, CardState, MerchantState};

const SNAPSHOT_MAGIC: &[u8; 4] = b"VTSS";
const SNAPSHOT_VERSION: u8 = 1;
const CLOCK_VERSION: u8 = 2;
/// Upper bound on any entry count in a snapshot (guards allocation on corrupt input).
const MAX_ENTRIES: usize = 1 << 28;

const TAG_CARD: u8 = b'c';
const TAG_MERCHANT: u8 = b'm';
const TAG_CATEGORY: u8 = b'k';
const TAG_CLOCK: u8 = b'w';

/// The key of a changelog record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateKey {
    /// One card's state, keyed by card number.
    Card(String),
    /// One merchant's state, keyed by merchant id (or name when the id is absent).
    Merchant(String),
    /// Global statistics of one category (keyed by the category's 32-bit hash).
    Category(u32),
    /// The engine clock: watermark, next sweep time, counters.
    Clock,
}

impl StateKey {
    /// Encode as record-key bytes: a one-byte tag followed by the identifier.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            StateKey::Card(k) => card_key(k),
            StateKey::Merchant(k) => merchant_key(k),
            StateKey::Category(k) => {
                let mut b = vec![TAG_CATEGORY];
                b.extend_from_slice(&k.to_le_bytes());
                b
            }
            StateKey::Clock => vec![TAG_CLOCK],
        }
    }

    /// Decode record-key bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, DecodeError> {
        let (&tag, rest) = b
            .split_first()
            .ok_or(DecodeError::Invalid("empty state key"))?;
        let text = || {
            std::str::from_utf8(rest)
                .map(str::to_owned)
                .map_err(|_| DecodeError::InvalidUtf8)
        };
        match tag {
            TAG_CARD => Ok(StateKey::Card(text()?)),
            TAG_MERCHANT => Ok(StateKey::Merchant(text()?)),
            TAG_CATEGORY => {
                let arr: [u8; 4] = rest
                    .try_into()
                    .map_err(|_| DecodeError::Invalid("category key length"))?;
                Ok(StateKey::Category(u32::from_le_bytes(arr)))
            }
            TAG_CLOCK if rest.is_empty() => Ok(StateKey::Clock),
            _ => Err(DecodeError::Invalid("state key tag")),
        }
    }
}

pub(crate) fn card_key(card: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(card.len() + 1);
    b.push(TAG_CARD);
    b.extend_from_slice(card.as_bytes());
    b
}

pub(crate) fn merchant_key(m: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(m.len() + 1);
    b.push(TAG_MERCHANT);
    b.extend_from_slice(m.as_bytes());
    b
}

/// One changelog record: the latest value of a piece of state, or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogEntry {
    /// [`StateKey::to_bytes`] of the state.
    pub key: Vec<u8>,
    /// The encoded state, or `None` when the state was evicted.
    pub value: Option<Vec<u8>>,
}

fn encode_stats(s: &EngineStats, w: &mut Writer) {
    w.u64(s.events);
    w.u64(s.late_accepted);
    w.u64(s.too_late);
    w.u64(s.evicted_cards);
    w.u64(s.evicted_merchants);
    w.u64(s.merchants_untracked);
}

fn decode_stats(r: &mut Reader<'_>) -> Result<EngineStats, DecodeError> {
    Ok(EngineStats {
        events: r.u64()?,
        late_accepted: r.u64()?,
        too_late: r.u64()?,
        evicted_cards: r.u64()?,
        evicted_merchants: r.u64()?,
        merchants_untracked: r.u64()?,
    })
}

impl Engine {
    fn encode_clock(&self, w: &mut Writer) {
        w.u8(CLOCK_VERSION);
        w.i64(self.watermark);
        w.i64(self.next_sweep);
        encode_stats(&self.stats, w);
    }

    fn decode_clock(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        let version = r.u8()?;
        if version != CLOCK_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: CLOCK_VERSION,
            });
        }
        self.watermark = r.ms()?;
        self.next_sweep = r.i64()?; // only compared, never subtracted
        self.stats = decode_stats(r)?;
        Ok(())
    }

    /// Encode the whole state (cards, merchants, categories, clock) as one byte string.
    ///
    /// The encoding is deterministic: equal states give equal bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(SNAPSHOT_MAGIC);
        w.u8(SNAPSHOT_VERSION);
        self.encode_clock(&mut w);
        let mut cards: Vec<_> = self.cards.iter().collect();
        cards.sort_unstable_by(|a, b| a.0.cmp(b.0));
        w.len(cards.len());
        for (k, c) in cards {
            w.str(k);
            c.encode(&mut w);
        }
        let mut merchants: Vec<_> = self.merchants.iter().collect();
        merchants.sort_unstable_by(|a, b| a.0.cmp(b.0));
        w.len(merchants.len());
        for (k, m) in merchants {
            w.str(k);
            m.encode(&mut w);
        }
        let mut cats: Vec<_> = self.categories.iter().collect();
        cats.sort_unstable_by_key(|e| *e.0);
        w.len(cats.len());
        for (k, s) in cats {
            w.u32(*k);
            encode_category(s, &mut w);
        }
        w.into_bytes()
    }

    /// Rebuild an engine from [`Engine::snapshot`] bytes.
    pub fn restore(cfg: EngineConfig, bytes: &[u8]) -> Result<Engine, DetectError> {
        let mut r = Reader::new(bytes);
        if r.bytes()? != SNAPSHOT_MAGIC {
            return Err(DecodeError::BadMagic.into());
        }
        let version = r.u8()?;
        if version != SNAPSHOT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: SNAPSHOT_VERSION,
            }
            .into());
        }
        let mut e = Engine::new(cfg);
        e.decode_clock(&mut r)?;
        let n = r.len(MAX_ENTRIES, "card count")?;
        for _ in 0..n {
            let k = r.string()?;
            let c = CardState::decode(&mut r)?;
            e.cards.insert(k, c);
        }
        let n = r.len(MAX_ENTRIES, "merchant count")?;
        for _ in 0..n {
            let k = r.string()?;
            let m = MerchantState::decode(&mut r)?;
            e.merchants.insert(k, m);
        }
        let n = r.len(crate::engine::MAX_GLOBAL_CATEGORIES, "category count")?;
        for _ in 0..n {
            let k = r.u32()?;
            e.categories.insert(k, decode_category(&mut r)?);
        }
        r.finish()?;
        Ok(e)
    }

    /// The encoded state of one card (a changelog value), if the card is in memory.
    pub fn card_state(&self, card_number: &str) -> Option<Vec<u8>> {
        self.cards.get(card_number).map(|c| {
            let mut w = Writer::new();
            c.encode(&mut w);
            w.into_bytes()
        })
    }

    /// Records for all state changed since the previous drain, sorted by key.
    pub fn drain_changelog(&mut self) -> Vec<ChangelogEntry> {
        let mut out = Vec::new();
        for k in self.tombstones.drain(..) {
            out.push(ChangelogEntry {
                key: k,
                value: None,
            });
        }
        for (k, c) in self.cards.iter_mut().filter(|(_, c)| c.dirty) {
            c.dirty = false;
            let mut w = Writer::new();
            c.encode(&mut w);
            out.push(ChangelogEntry {
                key: card_key(k),
                value: Some(w.into_bytes()),
            });
        }
        for (k, m) in self.merchants.iter_mut().filter(|(_, m)| m.dirty) {
            m.dirty = false;
            let mut w = Writer::new();
            m.encode(&mut w);
            out.push(ChangelogEntry {
                key: merchant_key(k),
                value: Some(w.into_bytes()),
            });
        }
        for k in self.dirty_categories.drain() {
            if let Some(s) = self.categories.get(&k) {
                let mut w = Writer::new();
                encode_category(s, &mut w);
                out.push(ChangelogEntry {
                    key: StateKey::Category(k).to_bytes(),
                    value: Some(w.into_bytes()),
                });
            }
        }
        if self.clock_dirty {
            self.clock_dirty = false;
            let mut w = Writer::new();
            self.encode_clock(&mut w);
            out.push(ChangelogEntry {
                key: StateKey::Clock.to_bytes(),
                value: Some(w.into_bytes()),
            });
        }
        // A key evicted and then seen again in the same interval appears twice; the
        // stable sort keeps the tombstone first, so the live value wins on replay.
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Apply one changelog record (as read back from a compacted topic).
    pub fn apply_changelog(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), DetectError> {
        let key = StateKey::from_bytes(key)?;
        let Some(value) = value else {
            match key {
                StateKey::Card(k) => {
                    self.cards.remove(&k);
                }
                StateKey::Merchant(k) => {
                    self.merchants.remove(&k);
                }
                StateKey::Category(k) => {
                    self.categories.remove(&k);
                }
                StateKey::Clock => {}
            }
            return Ok(());
        };
        let mut r = Reader::new(value);
        match key {
            StateKey::Card(k) => {
                let c = CardState::decode(&mut r)?;
                r.finish()?;
                self.cards.insert(k, c);
            }
            StateKey::Merchant(k) => {
                let m = MerchantState::decode(&mut r)?;
                r.finish()?;
                self.merchants.insert(k, m);
            }
            StateKey::Category(k) => {
                let s = decode_category(&mut r)?;
                r.finish()?;
                if self.categories.contains_key(&k)
                    || self.categories.len() < crate::engine::MAX_GLOBAL_CATEGORIES
                {
                    self.categories.insert(k, s);
                }
            }
            StateKey::Clock => {
                self.decode_clock(&mut r)?;
                r.finish()?;
            }
        }
        Ok(())
    }
}
