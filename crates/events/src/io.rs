//! Labelled data files: streaming readers and writers for `.jsonl` and `.csv`.
//!
//! Readers yield `(line_number, Result<LabelledTransaction, EventError>)`: a bad line is
//! reported with its 1-based line number and reading goes on with the next one, so a
//! caller can log and skip. An I/O failure is reported once and ends the stream (see
//! [`EventError::is_per_event`]).
//!
//! Both formats carry the same field names. CSV has one header row; columns may come in
//! any order, unknown columns are ignored, empty cells are absent values.

#[path = "foreign.rs"]
pub mod foreign;

pub use foreign::SparkovReader;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use chrono::SecondsFormat;

use crate::decode::encode_labelled_into;
use crate::model::parse_flag;
use crate::wire::parse_timestamp;
use crate::{Channel, EventError, Label, LabelledTransaction, Transaction};

/// The columns of a labelled CSV file, in the order the writer emits them.
pub const CSV_COLUMNS: [&str; 20] = [
    "transaction_id",
    "timestamp",
    "card_number",
    "amount",
    "currency",
    "customer_id",
    "first_name",
    "last_name",
    "merchant",
    "merchant_id",
    "category",
    "channel",
    "lat",
    "lon",
    "city",
    "country",
    "home_lat",
    "home_lon",
    "is_fraud",
    "scenario",
];

// Indices into CSV_COLUMNS.
const C_ID: usize = 0;
const C_TS: usize = 1;
const C_CARD: usize = 2;
const C_AMOUNT: usize = 3;
const C_CURRENCY: usize = 4;
const C_CUSTOMER: usize = 5;
const C_FIRST: usize = 6;
const C_LAST: usize = 7;
const C_MERCHANT: usize = 8;
const C_MERCHANT_ID: usize = 9;
const C_CATEGORY: usize = 10;
const C_CHANNEL: usize = 11;
const C_LAT: usize = 12;
const C_LON: usize = 13;
const C_CITY: usize = 14;
const C_COUNTRY: usize = 15;
const C_HOME_LAT: usize = 16;
const C_HOME_LON: usize = 17;
const C_IS_FRAUD: usize = 18;
const C_SCENARIO: usize = 19;
const REQUIRED: [usize; 5] = [C_ID, C_TS, C_CARD, C_AMOUNT, C_IS_FRAUD];

/// A labelled file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// One JSON object per line (`.jsonl`, also `.ndjson` and `.json`).
    Jsonl,
    /// Comma-separated values with a header row (`.csv`).
    Csv,
}

impl FileFormat {
    /// The format named by `path`'s extension (ASCII case-insensitive).
    pub fn from_path(path: &Path) -> Result<Self, EventError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("jsonl" | "ndjson" | "json") => Ok(FileFormat::Jsonl),
            Some("csv") => Ok(FileFormat::Csv),
            _ => Err(EventError::UnsupportedFormat(path.display().to_string())),
        }
    }
}

/// Streaming reader of labelled JSON Lines. Blank lines are skipped.
#[derive(Debug)]
pub struct JsonlReader<R> {
    inner: R,
    buf: Vec<u8>,
    line: u64,
    failed: bool,
}

impl<R: BufRead> JsonlReader<R> {
    /// Read labelled events from `inner`.
    pub fn new(inner: R) -> Self {
        JsonlReader {
            inner,
            buf: Vec::with_capacity(512),
            line: 0,
            failed: false,
        }
    }
}

impl<R: BufRead> Iterator for JsonlReader<R> {
    type Item = (u64, Result<LabelledTransaction, EventError>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            self.buf.clear();
            self.line += 1;
            match self.inner.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {
                    let line = self.buf.trim_ascii();
                    if line.is_empty() {
                        continue;
                    }
                    return Some((self.line, crate::decode_labelled(line)));
                }
                Err(e) => {
                    self.failed = true;
                    return Some((self.line, Err(e.into())));
                }
            }
        }
    }
}

/// Counts the newlines that pass through it, so that a record's byte offset can be
/// turned into a line number (the CSV parser skips blank lines without counting them).
#[derive(Debug)]
struct LineCounter<R> {
    inner: R,
    /// Bytes read so far.
    offset: u64,
    /// Newlines before the last record asked about.
    counted: u64,
    /// Offsets of newlines read but not counted yet.
    pending: std::collections::VecDeque<u64>,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, &b) in buf.iter().take(n).enumerate() {
            if b == b'\n' {
                self.pending.push_back(self.offset + i as u64);
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

impl<R> LineCounter<R> {
    /// The 1-based line on which a record starts, given the reader's byte offset just
    /// after it and the number of newlines quoted inside it. Offsets must not decrease
    /// from one call to the next.
    ///
    /// Counting back from the end is exact even when blank lines precede the record
    /// (the parser reports a start offset *before* them).
    fn record_line(&mut self, end: u64, embedded: u64) -> u64 {
        let mut last = None;
        while let Some(&nl) = self.pending.front() {
            if nl >= end {
                break;
            }
            self.pending.pop_front();
            self.counted += 1;
            last = Some(nl);
        }
        let terminated = u64::from(last.is_some_and(|nl| nl + 1 == end));
        (self.counted + 1).saturating_sub(terminated + embedded)
    }
}

/// Streaming reader of labelled CSV.
#[derive(Debug)]
pub struct CsvReader<R> {
    inner: csv::Reader<LineCounter<R>>,
    /// For each of [`CSV_COLUMNS`], its index in the file's header.
    columns: [Option<usize>; CSV_COLUMNS.len()],
    header_len: usize,
    record: csv::ByteRecord,
    /// A header problem, reported as the first item.
    pending: Option<EventError>,
    done: bool,
}

impl<R: Read> CsvReader<R> {
    /// Read labelled events from `inner`; the first row must be the header.
    pub fn new(inner: R) -> Self {
        let mut inner = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(LineCounter {
                inner,
                offset: 0,
                counted: 0,
                pending: std::collections::VecDeque::new(),
            });
        let mut columns = [None; CSV_COLUMNS.len()];
        let mut header_len = 0;
        let mut pending = None;
        match inner.byte_headers() {
            Ok(header) => {
                header_len = header.len();
                for (i, name) in header.iter().enumerate() {
                    let name = name.trim_ascii();
                    // A UTF-8 byte-order mark may precede the first column name.
                    let name = name.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(name);
                    if let Some(c) = CSV_COLUMNS.iter().position(|c| c.as_bytes() == name) {
                        columns[c].get_or_insert(i);
                    }
                }
                if let Some(&missing) = REQUIRED.iter().find(|&&c| columns[c].is_none()) {
                    pending = Some(EventError::MissingColumn(CSV_COLUMNS[missing]));
                }
            }
            Err(e) => pending = Some(e.into()),
        }
        CsvReader {
            inner,
            columns,
            header_len,
            record: csv::ByteRecord::new(),
            pending,
            done: false,
        }
    }

    fn cell(&self, column: usize) -> Result<Option<&str>, EventError> {
        let Some(i) = self.columns[column] else {
            return Ok(None);
        };
        let Some(bytes) = self.record.get(i) else {
            return Ok(None);
        };
        let s = std::str::from_utf8(bytes).map_err(|_| EventError::NotUtf8(CSV_COLUMNS[column]))?;
        let s = s.trim();
        Ok(if s.is_empty() { None } else { Some(s) })
    }

    fn string(&self, column: usize) -> Result<Option<String>, EventError> {
        Ok(self.cell(column)?.map(str::to_owned))
    }

    fn required(&self, column: usize) -> Result<&str, EventError> {
        self.cell(column)?
            .ok_or(EventError::MissingField(CSV_COLUMNS[column]))
    }

    fn number(&self, column: usize) -> Result<Option<f64>, EventError> {
        match self.cell(column)? {
            None => Ok(None),
            Some(s) => s.parse::<f64>().map(Some).map_err(|_| {
                EventError::invalid(CSV_COLUMNS[column], format_args!("{s:?} is not a number"))
            }),
        }
    }

    fn parse_record(&self) -> Result<LabelledTransaction, EventError> {
        if self.record.len() != self.header_len {
            return Err(EventError::RowLength {
                expected: self.header_len,
                found: self.record.len(),
            });
        }
        let timestamp = parse_timestamp(self.required(C_TS)?)?;
        let amount = self
            .number(C_AMOUNT)?
            .ok_or(EventError::MissingField("amount"))?;
        let is_fraud_text = self.required(C_IS_FRAUD)?;
        let is_fraud = parse_flag(is_fraud_text).ok_or_else(|| {
            EventError::invalid(
                "is_fraud",
                format_args!("must be 0/1 or true/false, got {is_fraud_text:?}"),
            )
        })?;
        let channel = match self.cell(C_CHANNEL)? {
            Some(c) => Some(c.parse::<Channel>()?),
            None => None,
        };
        let tx = Transaction {
            transaction_id: self.required(C_ID)?.to_owned(),
            timestamp,
            card_number: self.required(C_CARD)?.to_owned(),
            amount,
            customer_id: self.string(C_CUSTOMER)?,
            first_name: self.string(C_FIRST)?,
            last_name: self.string(C_LAST)?,
            currency: self.string(C_CURRENCY)?.unwrap_or_else(|| "USD".to_owned()),
            merchant: self.string(C_MERCHANT)?,
            merchant_id: self.string(C_MERCHANT_ID)?,
            category: self.string(C_CATEGORY)?,
            channel,
            lat: self.number(C_LAT)?,
            lon: self.number(C_LON)?,
            home_lat: self.number(C_HOME_LAT)?,
            home_lon: self.number(C_HOME_LON)?,
            city: self.string(C_CITY)?,
            country: self.string(C_COUNTRY)?,
        };
        tx.validate()?;
        Ok(LabelledTransaction {
            tx,
            label: Label {
                is_fraud,
                scenario: self.string(C_SCENARIO)?,
            },
        })
    }
}

impl<R: Read> Iterator for CsvReader<R> {
    type Item = (u64, Result<LabelledTransaction, EventError>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.pending.take() {
            // A header without the required columns makes every row unusable.
            self.done = true;
            return Some((1, Err(e)));
        }
        loop {
            match self.inner.read_byte_record(&mut self.record) {
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Ok(true) => {
                    let end = self.inner.position().byte();
                    let embedded = self
                        .record
                        .iter()
                        .map(|f| f.iter().filter(|&&b| b == b'\n').count() as u64)
                        .sum();
                    let line = self.inner.get_mut().record_line(end, embedded);
                    // Skip rows that are entirely empty (e.g. a trailing blank line).
                    if self.record.iter().all(|f| f.trim_ascii().is_empty()) {
                        continue;
                    }
                    return Some((line, self.parse_record()));
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    if e.is_io_error() {
                        self.done = true;
                    }
                    return Some((line, Err(e.into())));
                }
            }
        }
    }
}

/// Writer of labelled JSON Lines.
#[derive(Debug)]
pub struct JsonlWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> JsonlWriter<W> {
    /// Write labelled events to `out` (wrap files in a `BufWriter`).
    pub fn new(out: W) -> Self {
        JsonlWriter {
            out,
            buf: Vec::with_capacity(512),
        }
    }

    /// Append one event as one line.
    pub fn write(&mut self, event: &LabelledTransaction) -> Result<(), EventError> {
        self.buf.clear();
        encode_labelled_into(event, &mut self.buf);
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)?;
        Ok(())
    }

    /// Flush and return the underlying writer.
    pub fn finish(mut self) -> Result<W, EventError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writer of labelled CSV: header row of [`CSV_COLUMNS`], `is_fraud` as `0`/`1`.
pub struct CsvWriter<W: Write> {
    out: csv::Writer<W>,
    float: ryu::Buffer,
}

impl<W: Write> std::fmt::Debug for CsvWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvWriter").finish_non_exhaustive()
    }
}

impl<W: Write> CsvWriter<W> {
    /// Write labelled events to `out`, starting with the header row.
    pub fn new(out: W) -> Result<Self, EventError> {
        let mut out = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(out);
        out.write_record(CSV_COLUMNS)?;
        Ok(CsvWriter {
            out,
            float: ryu::Buffer::new(),
        })
    }

    fn float(&mut self, v: Option<f64>) -> Result<(), EventError> {
        match v {
            Some(v) if v.is_finite() => self.out.write_field(self.float.format_finite(v))?,
            _ => self.out.write_field("")?,
        }
        Ok(())
    }

    fn text(&mut self, v: Option<&str>) -> Result<(), EventError> {
        self.out.write_field(v.unwrap_or(""))?;
        Ok(())
    }

    /// Append one event as one row.
    pub fn write(&mut self, event: &LabelledTransaction) -> Result<(), EventError> {
        let tx = &event.tx;
        let timestamp = tx.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        self.out.write_field(&tx.transaction_id)?;
        self.out.write_field(&timestamp)?;
        self.out.write_field(&tx.card_number)?;
        self.float(Some(tx.amount))?;
        self.out.write_field(&tx.currency)?;
        self.text(tx.customer_id.as_deref())?;
        self.text(tx.first_name.as_deref())?;
        self.text(tx.last_name.as_deref())?;
        self.text(tx.merchant.as_deref())?;
        self.text(tx.merchant_id.as_deref())?;
        self.text(tx.category.as_deref())?;
        self.text(tx.channel.map(Channel::as_str))?;
        self.float(tx.lat)?;
        self.float(tx.lon)?;
        self.text(tx.city.as_deref())?;
        self.text(tx.country.as_deref())?;
        self.float(tx.home_lat)?;
        self.float(tx.home_lon)?;
        self.out
            .write_field(if event.label.is_fraud { "1" } else { "0" })?;
        self.text(event.label.scenario.as_deref())?;
        self.out.write_record(None::<&[u8]>)?;
        Ok(())
    }

    /// Flush and return the underlying writer.
    pub fn finish(self) -> Result<W, EventError> {
        self.out
            .into_inner()
            .map_err(|e| EventError::Io(io::Error::new(e.error().kind(), e.error().to_string())))
    }
}

/// A reader of a labelled file, its format chosen by extension.
#[derive(Debug)]
pub enum LabelledReader {
    /// A `.jsonl` file.
    Jsonl(JsonlReader<BufReader<File>>),
    /// A `.csv` file.
    Csv(Box<CsvReader<File>>),
}

impl LabelledReader {
    /// Open `path` (`.jsonl` or `.csv`).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, EventError> {
        let path = path.as_ref();
        let format = FileFormat::from_path(path)?;
        let file = File::open(path)?;
        Ok(match format {
            FileFormat::Jsonl => {
                LabelledReader::Jsonl(JsonlReader::new(BufReader::with_capacity(1 << 16, file)))
            }
            FileFormat::Csv => LabelledReader::Csv(Box::new(CsvReader::new(file))),
        })
    }
}

impl Iterator for LabelledReader {
    type Item = (u64, Result<LabelledTransaction, EventError>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            LabelledReader::Jsonl(r) => r.next(),
            LabelledReader::Csv(r) => r.next(),
        }
    }
}

/// A writer of a labelled file, its format chosen by extension.
#[derive(Debug)]
pub enum LabelledWriter {
    /// A `.jsonl` file.
    Jsonl(JsonlWriter<BufWriter<File>>),
    /// A `.csv` file.
    Csv(Box<CsvWriter<File>>),
}

impl LabelledWriter {
    /// Create (or truncate) `path` (`.jsonl` or `.csv`).
    pub fn create(path: impl AsRef<Path>) -> Result<Self, EventError> {
        let path = path.as_ref();
        let format = FileFormat::from_path(path)?;
        let file = File::create(path)?;
        Ok(match format {
            FileFormat::Jsonl => {
                LabelledWriter::Jsonl(JsonlWriter::new(BufWriter::with_capacity(1 << 16, file)))
            }
            FileFormat::Csv => LabelledWriter::Csv(Box::new(CsvWriter::new(file)?)),
        })
    }

    /// Append one event.
    pub fn write(&mut self, event: &LabelledTransaction) -> Result<(), EventError> {
        match self {
            LabelledWriter::Jsonl(w) => w.write(event),
            LabelledWriter::Csv(w) => w.write(event),
        }
    }

    /// Flush everything to the file and sync it to disk.
    pub fn finish(self) -> Result<(), EventError> {
        let file = match self {
            LabelledWriter::Jsonl(w) => w.finish()?.into_inner().map_err(|e| {
                EventError::Io(io::Error::new(e.error().kind(), e.error().to_string()))
            })?,
            LabelledWriter::Csv(w) => w.finish()?,
        };
        file.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Generator, GeneratorConfig};

    fn sample(n: usize) -> Vec<LabelledTransaction> {
        let cfg = GeneratorConfig {
            seed: 99,
            customers: 100,
            fraud_rate: 0.2,
            ..GeneratorConfig::default()
        };
        match Generator::new(cfg) {
            Ok(g) => g.take(n).collect(),
            Err(e) => panic!("{e}"),
        }
    }

    fn ok_events(
        items: Vec<(u64, Result<LabelledTransaction, EventError>)>,
    ) -> Vec<LabelledTransaction> {
        items
            .into_iter()
            .map(|(line, r)| r.unwrap_or_else(|e| panic!("line {line}: {e}")))
            .collect()
    }

    #[test]
    fn jsonl_round_trip() {
        let events = sample(2000);
        assert!(events.iter().any(|e| e.label.is_fraud));
        let mut w = JsonlWriter::new(Vec::new());
        for e in &events {
            w.write(e).unwrap_or_else(|e| panic!("{e}"));
        }
        let bytes = w.finish().unwrap_or_default();
        let items: Vec<_> = JsonlReader::new(&bytes[..]).collect();
        assert_eq!(items.first().map(|i| i.0), Some(1));
        assert_eq!(items.last().map(|i| i.0), Some(2000));
        assert_eq!(ok_events(items), events);
    }

    #[test]
    fn csv_round_trip() {
        let events = sample(2000);
        let mut w = CsvWriter::new(Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        for e in &events {
            w.write(e).unwrap_or_else(|e| panic!("{e}"));
        }
        let bytes = w.finish().unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with(&CSV_COLUMNS.join(",")));
        let items: Vec<_> = CsvReader::new(&bytes[..]).collect();
        // Line 1 is the header.
        assert_eq!(items.first().map(|i| i.0), Some(2));
        assert_eq!(ok_events(items), events);
    }

    #[test]
    fn bad_jsonl_lines_are_reported_with_their_number_and_skipped() {
        let good = r#"{"transaction_id":"a","timestamp":"2025-01-01T00:00:00Z","card_number":"4111111111111111","amount":5,"is_fraud":0}"#;
        let text = format!(
            "{good}\n{{broken\n{good}\r\n\n   \n{}\n{}\n{good}",
            r#"{"transaction_id":"b","timestamp":"2025-01-01T00:00:00Z","card_number":"4111111111111111","is_fraud":0}"#,
            r#"{"transaction_id":"c","timestamp":"2025-01-01T00:00:00Z","card_number":"4111111111111111","amount":5,"is_fraud":7}"#,
        );
        let items: Vec<_> = JsonlReader::new(text.as_bytes()).collect();
        let summary: Vec<(u64, bool)> = items.iter().map(|(l, r)| (*l, r.is_ok())).collect();
        assert_eq!(
            summary,
            vec![
                (1, true),
                (2, false),
                (3, true),
                (6, false),
                (7, false),
                (8, true)
            ]
        );
        assert!(matches!(items[1].1, Err(EventError::Json(_))));
        assert!(matches!(
            items[3].1,
            Err(EventError::MissingField("amount"))
        ));
        assert!(items
            .iter()
            .all(|(_, r)| r.as_ref().err().is_none_or(EventError::is_per_event)));
    }

    #[test]
    fn bad_csv_rows_are_reported_with_their_number_and_skipped() {
        // Columns in another order, an unknown column, a quoted comma, a short row, a bad
        // amount, a bad flag, an embedded newline in a quoted field.
        let text = "\u{feff}amount,extra,card_number,timestamp,transaction_id,is_fraud,merchant\n\
                    1.5,x,4111111111111111,2025-01-01T00:00:00Z,a,0,\"Smith, Jones & Co\"\n\
                    oops,x,4111111111111111,2025-01-01T00:00:00Z,b,0,m\n\
                    2,x,4111111111111111\n\
                    3,x,4111111111111111,2025-01-01T00:00:00Z,c,maybe,m\n\
                    4,x,4111111111111111,2025-01-01T00:00:00Z,d,1,\"two\nlines\"\n\
                    \n\
                    5,x,4111111111111111,2025-01-01T00:00:00Z,e,true,\n";
        let items: Vec<_> = CsvReader::new(text.as_bytes()).collect();
        let summary: Vec<(u64, bool)> = items.iter().map(|(l, r)| (*l, r.is_ok())).collect();
        assert_eq!(
            summary,
            vec![
                (2, true),
                (3, false),
                (4, false),
                (5, false),
                (6, true),
                (9, true)
            ]
        );
        match &items[1].1 {
            Err(EventError::InvalidField { field, .. }) => assert_eq!(*field, "amount"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            items[2].1,
            Err(EventError::RowLength {
                expected: 7,
                found: 3
            })
        ));
        match &items[3].1 {
            Err(EventError::InvalidField { field, .. }) => assert_eq!(*field, "is_fraud"),
            other => panic!("{other:?}"),
        }
        let first = items[0].1.as_ref().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.tx.merchant.as_deref(), Some("Smith, Jones & Co"));
        assert_eq!(first.tx.amount, 1.5);
        assert_eq!(first.tx.currency, "USD");
        assert!(!first.label.is_fraud);
        let multi = items[4].1.as_ref().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(multi.tx.merchant.as_deref(), Some("two\nlines"));
        assert!(multi.label.is_fraud);
        let last = items[5].1.as_ref().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(last.tx.merchant, None);
    }

    #[test]
    fn csv_line_numbers_with_crlf_and_blank_lines() {
        let row = |id: &str| format!("{id},2025-01-01T00:00:00Z,4111111111111111,1,0");
        let text = format!(
            "transaction_id,timestamp,card_number,amount,is_fraud\r\n\r\n{}\r\n\r\n\r\n{}\r\nbad\r\n{}",
            row("a"),
            row("b"),
            row("c")
        );
        let lines: Vec<(u64, bool)> = CsvReader::new(text.as_bytes())
            .map(|(l, r)| (l, r.is_ok()))
            .collect();
        assert_eq!(lines, vec![(3, true), (6, true), (7, false), (8, true)]);
    }

    #[test]
    fn csv_without_a_required_column_fails_once() {
        let text = "transaction_id,timestamp,card_number,amount\na,2025-01-01T00:00:00Z,4111111111111111,1\n";
        let items: Vec<_> = CsvReader::new(text.as_bytes()).collect();
        assert_eq!(items.len(), 1);
        assert!(matches!(
            items[0],
            (1, Err(EventError::MissingColumn("is_fraud")))
        ));
        assert!(items[0].1.as_ref().err().is_some_and(|e| !e.is_per_event()));
        assert_eq!(CsvReader::new(&b""[..]).count(), 1);
    }

    #[test]
    fn io_failure_ends_the_stream() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let items: Vec<_> = JsonlReader::new(BufReader::new(Failing)).collect();
        assert_eq!(items.len(), 1);
        assert!(matches!(items[0].1, Err(EventError::Io(_))));
        assert!(items[0].1.as_ref().err().is_some_and(|e| !e.is_per_event()));
    }

    #[test]
    fn formats_by_extension_and_files_round_trip() {
        assert_eq!(
            FileFormat::from_path(Path::new("a/b.jsonl")).ok(),
            Some(FileFormat::Jsonl)
        );
        assert_eq!(
            FileFormat::from_path(Path::new("b.CSV")).ok(),
            Some(FileFormat::Csv)
        );
        assert!(FileFormat::from_path(Path::new("b.parquet")).is_err());
        assert!(FileFormat::from_path(Path::new("noext")).is_err());
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let events = sample(500);
        for name in ["x.jsonl", "x.csv"] {
            let path = dir.path().join(name);
            let mut w = LabelledWriter::create(&path).unwrap_or_else(|e| panic!("{e}"));
            for e in &events {
                w.write(e).unwrap_or_else(|e| panic!("{e}"));
            }
            w.finish().unwrap_or_else(|e| panic!("{e}"));
            let r = LabelledReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(ok_events(r.collect()), events, "{name}");
        }
        assert!(matches!(
            LabelledReader::open(dir.path().join("missing.jsonl")),
            Err(EventError::Io(_))
        ));
    }
}
