//! Producer id allocation for idempotent producers (InitProducerId).
//!
//! Ids must never be handed out twice, across restarts and crashes: a reused id would let a
//! new producer's sequence numbers collide with an old one's state in the logs. Ids are taken
//! from blocks; the end of the current block is persisted (atomically) *before* any id of the
//! block is given out, so after a crash allocation resumes past every id that may have been
//! used. A restart wastes at most one block, as Kafka's own allocation does.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::cluster::{write_atomically, ClusterError};

const BLOCK: i64 = 1000;

/// Hands out unique producer ids.
pub(crate) struct ProducerIds {
    path: PathBuf,
    state: Mutex<(i64, i64)>, // (next id, end of the persisted block, exclusive)
}

impl ProducerIds {
    /// Opens the allocator whose state lives in `meta_dir/producer-ids`.
    pub(crate) fn open(meta_dir: &Path) -> Result<Self, ClusterError> {
        let path = meta_dir.join("producer-ids");
        let next = match std::fs::read_to_string(&path) {
            Ok(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|e| ClusterError::CorruptMetadata {
                    path: path.clone(),
                    reason: e.to_string(),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(cause) => return Err(ClusterError::Io { path, cause }),
        };
        if next < 0 {
            return Err(ClusterError::CorruptMetadata {
                path,
                reason: format!("negative id {next}"),
            });
        }
        Ok(ProducerIds {
            path,
            state: Mutex::new((next, next)),
        })
    }

    /// The next unused producer id.
    pub(crate) fn allocate(&self) -> Result<i64, ClusterError> {
        let mut state = self.state.lock();
        if state.0 >= state.1 {
            let end = state.1 + BLOCK;
            let tmp = self.path.with_extension("tmp");
            write_atomically(&tmp, &self.path, end.to_string().as_bytes())?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIds::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| a.allocate().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(a);
        let b = ProducerIds::open(dir.path()).unwrap();
        let next = b.allocate().unwrap();
        assert!(next > 2, "an id was reused after reopen: {next}");
    }
}
