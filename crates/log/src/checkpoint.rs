//! Small files written atomically: write a temporary file, optionally fsync it, rename it over
//! the target, then fsync the directory so the rename itself is durable.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, LogError};

/// Name of the recovery point checkpoint (offset below which the log is known to be fsync'ed).
pub const RECOVERY_POINT_FILE: &str = "recovery-point";
/// Name of the log start offset checkpoint.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";
/// Name of the compaction checkpoint: how far the last compaction pass examined the log.
pub const CLEANER_OFFSET_FILE: &str = "cleaner-offset";
/// Suffix of files being written; leftovers are removed on open.
pub const TMP_SUFFIX: &str = ".tmp";

/// Atomically replaces `dir/name` with `contents`. With `durable`, the data and the rename are
/// fsync'ed before returning; without it the file is still all-or-nothing after a process
/// crash, and callers that skip the fsync protect the contents with a checksum.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    contents: &[u8],
    durable: bool,
) -> Result<(), LogError> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let target = dir.join(name);
    {
        let mut f = File::create(&tmp).at(&tmp)?;
        f.write_all(contents).at(&tmp)?;
        if durable {
            f.sync_all().at(&tmp)?;
        }
    }
    fs::rename(&tmp, &target).at(&target)?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fsyncs a directory so that file creations, renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Writes an offset checkpoint: a version line `0` followed by the offset, text like Kafka's.
pub(crate) fn write_offset(dir: &Path, name: &str, offset: i64) -> Result<(), LogError> {
    write_atomic(dir, name, format!("0\n{offset}\n").as_bytes(), true)
}

/// Reads an offset checkpoint. `None` if the file is missing or does not parse (a warning is
/// logged for the latter); callers then fall back to the safe choice.
pub(crate) fn read_offset(dir: &Path, name: &str) -> Option<i64> {
    let path = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read checkpoint, ignoring it");
            return None;
        }
    };
    let parsed = std::str::from_utf8(&bytes).ok().and_then(|text| {
        let mut lines = text.lines();
        let version = lines.next()?;
        let value = lines.next()?;
        if version.trim() != "0" || lines.any(|l| !l.trim().is_empty()) {
            return None;
        }
        value.trim().parse::<i64>().ok().filter(|v| *v >= 0)
    });
    if parsed.is_none() {
        tracing::warn!(path = %path.display(), "garbage in checkpoint file, ignoring it");
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_offset(dir.path(), "x"), None);
        write_offset(dir.path(), "x", 42).unwrap();
        assert_eq!(read_offset(dir.path(), "x"), Some(42));
        assert!(!dir.path().join("x.tmp").exists());
        for garbage in [
            &b"\xff\xfe"[..],
            b"",
            b"0\n",
            b"1\n5\n",
            b"0\n-3\n",
            b"0\nabc\n",
            b"0\n5\n6\n",
        ] {
            fs::write(dir.path().join("x"), garbage).unwrap();
            assert_eq!(read_offset(dir.path(), "x"), None, "{garbage:?}");
        }
    }
}
