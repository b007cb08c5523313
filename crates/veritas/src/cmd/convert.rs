//! `veritas convert`: map a labelled dataset published in another schema onto the
//! canonical events, so `veritas train`, `score` and `eval` can use it.
//!
//! The rows of every input are read, bad rows are reported (with file and line) and
//! skipped, the events are sorted by event time (stable: equal times keep input order;
//! generators often write one customer after another, while the detector needs a stream)
//! and written as `.jsonl` or `.csv` (by the output's extension). The mappings are
//! documented in `docs/datasets.md`.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use veritas_events::io::{LabelledWriter, SparkovReader};

use super::rows::BadRows;

/// Source schemas `veritas convert` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceFormat {
    /// The Sparkov generator's transactions: the comma-separated "credit card
    /// transactions fraud detection" files, or the generator's own pipe-separated output.
    Sparkov,
}

/// Flags of `veritas convert`.
#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    /// Schema of the input files.
    #[arg(long, value_enum, env = "VERITAS_CONVERT_FROM")]
    pub from: SourceFormat,
    /// Input files (all of the same schema; their rows are merged and sorted by time).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output file: `.jsonl` or `.csv`.
    #[arg(long, env = "VERITAS_CONVERT_OUT")]
    pub out: PathBuf,
    /// Give up when more than this share of the rows is unreadable.
    #[arg(long, env = "VERITAS_MAX_BAD_FRACTION", default_value_t = super::rows::DEFAULT_MAX_BAD_FRACTION)]
    pub max_bad_fraction: f64,
}

/// Run `veritas convert`.
pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut events = Vec::new();
    let mut bad_rows = BadRows::new(args.max_bad_fraction);
    for path in &args.inputs {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let reader = match args.from {
            SourceFormat::Sparkov => SparkovReader::new(BufReader::with_capacity(1 << 16, file)),
        };
        for (line, item) in reader {
            match item {
                Ok(e) => events.push(e),
                Err(e) => bad_rows.skip(path, line, e)?,
            }
        }
    }
    let bad = bad_rows.finish(events.len() as u64)?;
    events.sort_by_key(|e| e.tx.timestamp);
    let mut out = LabelledWriter::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for e in &events {
        out.write(e)?;
    }
    out.finish()?;
    let frauds = events.iter().filter(|e| e.label.is_fraud).count();
    let cards: std::collections::HashSet<&str> =
        events.iter().map(|e| e.tx.card_number.as_str()).collect();
    let (first, last) = match (events.first(), events.last()) {
        (Some(a), Some(b)) => (a.tx.timestamp.to_rfc3339(), b.tx.timestamp.to_rfc3339()),
        _ => (String::new(), String::new()),
    };
    println!(
        "wrote {} events ({frauds} fraud, {:.3} %; {} cards; {first} .. {last}) to {} in {:.1} s; {bad} rows skipped",
        events.len(),
        100.0 * frauds as f64 / events.len().max(1) as f64,
        cards.len(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use veritas_events::io::LabelledReader;

    #[test]
    fn converts_sorts_and_skips_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("sample.csv");
        std::fs::write(
            &input,
            "\
,trans_date_trans_time,cc_num,merchant,category,amt,first,last,trans_num,merch_lat,merch_long,lat,long,is_fraud
0,2019-01-01 00:05:00,4111111111111111,fraud_Kub,grocery_pos,20.50,Ann,Lee,b,40.1,-75.2,40.0,-75.0,1
1,2019-01-01 00:01:00,4111111111111111,fraud_Kub,grocery_pos,12.00,Ann,Lee,a,40.1,-75.2,40.0,-75.0,0
2,not a time,4111111111111111,fraud_Kub,grocery_pos,1.00,Ann,Lee,c,40.1,-75.2,40.0,-75.0,0
",
        )
        .unwrap();
        let out = dir.path().join("out.jsonl");
        let args = |max_bad_fraction| ConvertArgs {
            from: SourceFormat::Sparkov,
            inputs: vec![input.clone()],
            out: out.clone(),
            max_bad_fraction,
        };
        assert!(run(args(0.1)).is_err(), "1 bad row in 3 is over 10 %");
        run(args(0.5)).unwrap();
        let events: Vec<_> = LabelledReader::open(&out)
            .unwrap()
            .map(|(_, r)| r.unwrap())
            .collect();
        let ids: Vec<&str> = events
            .iter()
            .map(|e| e.tx.transaction_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b"], "sorted by event time");
        assert!(events[1].label.is_fraud);
        assert_eq!(events[0].tx.merchant_id.as_deref(), Some("Kub"));
    }
}
