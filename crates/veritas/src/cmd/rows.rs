//! Bad rows of input files: what `convert`, `train`, `score` and `eval` do with a line that
//! is not a valid event.
//!
//! A row that is wrong on its own (malformed JSON, a missing or invalid field) is reported
//! with its file and line (the first [`REPORTED`] of them), skipped and counted; an error
//! of the file itself (I/O, an unsupported format, a CSV header without a required column)
//! stops the command. So does a file with more than `--max-bad-fraction` of its rows bad:
//! it is probably not what it claims to be.

use std::path::Path;

use anyhow::{bail, Context};
use veritas_events::EventError;

/// How many skipped rows are reported one by one; the rest are only counted.
pub const REPORTED: u64 = 10;

/// The default of `--max-bad-fraction`.
pub const DEFAULT_MAX_BAD_FRACTION: f64 = 0.01;

/// Counts the rows skipped from a command's inputs.
#[derive(Debug)]
pub struct BadRows {
    max_fraction: f64,
    bad: u64,
}

impl BadRows {
    /// Accepts at most `max_fraction` of all rows bad.
    pub fn new(max_fraction: f64) -> Self {
        Self {
            max_fraction,
            bad: 0,
        }
    }

    /// Deals with the error of row `line` of `path`: skips a row's own error (reported,
    /// counted), returns a file's.
    pub fn skip(&mut self, path: &Path, line: u64, error: EventError) -> anyhow::Result<()> {
        if !error.is_per_event() {
            return Err(error).with_context(|| format!("{}:{line}", path.display()));
        }
        self.bad += 1;
        if self.bad <= REPORTED {
            tracing::warn!("{}:{line}: skipped: {error}", path.display());
        } else if self.bad == REPORTED + 1 {
            tracing::warn!("more rows skipped; counting them from here on");
        }
        Ok(())
    }

    /// After the last row, `good` of them read: fails when there were no rows at all, or
    /// more than the allowed share of bad ones.
    pub fn finish(&self, good: u64) -> anyhow::Result<u64> {
        let total = good + self.bad;
        if total == 0 {
            bail!("no rows in the input");
        }
        if self.bad as f64 > self.max_fraction * total as f64 {
            bail!(
                "{} of {total} rows unreadable (more than --max-bad-fraction {})",
                self.bad,
                self.max_fraction
            );
        }
        Ok(self.bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_error() -> EventError {
        veritas_events::decode_labelled(b"{not json").unwrap_err()
    }

    #[test]
    fn bad_rows_are_counted_until_there_are_too_many() {
        let path = Path::new("in.jsonl");
        let mut rows = BadRows::new(0.1);
        rows.skip(path, 3, row_error()).unwrap();
        assert_eq!(rows.finish(9).unwrap(), 1, "1 in 10 is allowed");
        let e = rows.finish(8).unwrap_err();
        assert_eq!(
            e.to_string(),
            "1 of 9 rows unreadable (more than --max-bad-fraction 0.1)"
        );
        assert_eq!(
            BadRows::new(1.0).finish(0).unwrap_err().to_string(),
            "no rows in the input"
        );
    }

    #[test]
    fn an_error_of_the_file_is_returned_with_its_place() {
        let io = EventError::from(std::io::Error::other("device gone"));
        let e = BadRows::new(1.0)
            .skip(Path::new("in.jsonl"), 7, io)
            .unwrap_err();
        assert_eq!(
            crate::error_report(&e),
            "in.jsonl:7: I/O error: device gone"
        );
    }
}
