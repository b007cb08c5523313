//! Readers of labelled datasets published in other schemas, mapped onto the canonical
//! [`Transaction`].
//!
//! [`SparkovReader`] reads the output of the Sparkov transaction generator: both the
//! widely shared comma-separated "credit card transactions fraud detection" files
//! (`trans_date_trans_time, cc_num, merchant, category, amt, first, last, gender, street,
//! city, state, zip, lat, long, city_pop, job, dob, trans_num, unix_time, merch_lat,
//! merch_long, is_fraud`, often with a leading unnamed index column) and the generator's
//! own pipe-separated files (`trans_date` and `trans_time` in two columns, plus `ssn`,
//! `acct_num` and `profile`). The mapping is documented in `docs/datasets.md`.
//!
//! Like [`crate::io::CsvReader`], the reader yields `(line, Result<…>)`: a bad row is
//! reported with its line number and reading goes on; an I/O error ends the stream.

use std::io::{BufRead, Read};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use crate::model::parse_flag;
use crate::{Channel, EventError, Label, LabelledTransaction, Transaction};

/// Card numbers shorter than this are left-padded with zeros (the schema requires 12–19
/// digits; the generator's fake numbers can have 11).
const MIN_CARD_DIGITS: usize = 12;

/// Prefix the Sparkov generator puts on every merchant name, legitimate or not (it is not
/// a label); the reader strips it.
const MERCHANT_PREFIX: &str = "fraud_";

/// Indices of the columns the mapping reads.
#[derive(Debug, Default, Clone, Copy)]
struct Columns {
    date_time: Option<usize>,
    date: Option<usize>,
    time: Option<usize>,
    unix_time: Option<usize>,
    card: Option<usize>,
    merchant: Option<usize>,
    category: Option<usize>,
    amount: Option<usize>,
    first: Option<usize>,
    last: Option<usize>,
    home_lat: Option<usize>,
    home_lon: Option<usize>,
    lat: Option<usize>,
    lon: Option<usize>,
    id: Option<usize>,
    account: Option<usize>,
    is_fraud: Option<usize>,
}

impl Columns {
    fn from_header(header: &csv::StringRecord) -> Result<Self, EventError> {
        let mut c = Columns::default();
        for (i, name) in header.iter().enumerate() {
            let name = name.trim().trim_start_matches('\u{feff}');
            let slot = match name {
                "trans_date_trans_time" => &mut c.date_time,
                "trans_date" => &mut c.date,
                "trans_time" => &mut c.time,
                "unix_time" => &mut c.unix_time,
                "cc_num" => &mut c.card,
                "merchant" => &mut c.merchant,
                "category" => &mut c.category,
                "amt" => &mut c.amount,
                "first" => &mut c.first,
                "last" => &mut c.last,
                "lat" => &mut c.home_lat,
                "long" => &mut c.home_lon,
                "merch_lat" => &mut c.lat,
                "merch_long" => &mut c.lon,
                "trans_num" => &mut c.id,
                "acct_num" => &mut c.account,
                "is_fraud" => &mut c.is_fraud,
                _ => continue,
            };
            slot.get_or_insert(i);
        }
        for (name, col) in [
            ("cc_num", c.card),
            ("amt", c.amount),
            ("trans_num", c.id),
            ("is_fraud", c.is_fraud),
        ] {
            if col.is_none() {
                return Err(EventError::MissingColumn(name));
            }
        }
        if c.date_time.is_none() && (c.date.is_none() || c.time.is_none()) && c.unix_time.is_none()
        {
            return Err(EventError::MissingColumn("trans_date_trans_time"));
        }
        Ok(c)
    }
}

/// Streaming reader of Sparkov transaction files (comma- or pipe-separated, detected
/// from the header line), yielding canonical labelled transactions.
#[derive(Debug)]
pub struct SparkovReader<R> {
    inner: csv::Reader<std::io::Chain<std::io::Cursor<Vec<u8>>, R>>,
    columns: Columns,
    header_len: usize,
    record: csv::StringRecord,
    pending: Option<EventError>,
    done: bool,
}

impl<R: BufRead> SparkovReader<R> {
    /// Read a Sparkov file from `inner`; the first line must be the header.
    pub fn new(mut inner: R) -> Self {
        let mut header = Vec::new();
        let read = inner.read_until(b'\n', &mut header);
        // Pipe-separated when the header has pipes and no commas (the generator's files).
        let delimiter = if header.contains(&b'|') && !header.contains(&b',') {
            b'|'
        } else {
            b','
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .flexible(true)
            .from_reader(std::io::Cursor::new(header).chain(inner));
        let mut pending = None;
        let mut columns = Columns::default();
        let mut header_len = 0;
        match read {
            Err(e) => pending = Some(EventError::Io(e)),
            Ok(_) => match reader.headers() {
                Ok(h) => {
                    header_len = h.len();
                    match Columns::from_header(h) {
                        Ok(c) => columns = c,
                        Err(e) => pending = Some(e),
                    }
                }
                Err(e) => pending = Some(e.into()),
            },
        }
        SparkovReader {
            inner: reader,
            columns,
            header_len,
            record: csv::StringRecord::new(),
            pending,
            done: false,
        }
    }

    fn cell(&self, column: Option<usize>) -> Option<&str> {
        let s = self.record.get(column?)?.trim();
        (!s.is_empty()).then_some(s)
    }

    fn number(&self, column: Option<usize>, name: &'static str) -> Result<Option<f64>, EventError> {
        match self.cell(column) {
            None => Ok(None),
            Some(s) => s
                .parse::<f64>()
                .map(Some)
                .map_err(|_| EventError::invalid(name, format_args!("{s:?} is not a number"))),
        }
    }

    fn timestamp(&self) -> Result<DateTime<Utc>, EventError> {
        let invalid = |s: &str| {
            EventError::invalid(
                "trans_date_trans_time",
                format_args!("{s:?} is not a date and time (YYYY-MM-DD HH:MM:SS)"),
            )
        };
        if let Some(s) = self.cell(self.columns.date_time) {
            let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
                .map_err(|_| invalid(s))?;
            return Ok(t.and_utc());
        }
        if let (Some(d), Some(t)) = (self.cell(self.columns.date), self.cell(self.columns.time)) {
            let date = NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| invalid(d))?;
            let time = NaiveTime::parse_from_str(t, "%H:%M:%S").map_err(|_| invalid(t))?;
            return Ok(date.and_time(time).and_utc());
        }
        if let Some(s) = self.cell(self.columns.unix_time) {
            let secs = s.parse::<i64>().map_err(|_| {
                EventError::invalid("unix_time", format_args!("{s:?} is not an integer"))
            })?;
            return DateTime::from_timestamp(secs, 0).ok_or_else(|| {
                EventError::invalid("unix_time", format_args!("{secs} is out of range"))
            });
        }
        Err(EventError::MissingField("trans_date_trans_time"))
    }

    fn parse_record(&self) -> Result<LabelledTransaction, EventError> {
        if self.record.len() != self.header_len {
            return Err(EventError::RowLength {
                expected: self.header_len,
                found: self.record.len(),
            });
        }
        let c = &self.columns;
        let timestamp = self.timestamp()?;
        let card = self
            .cell(c.card)
            .ok_or(EventError::MissingField("cc_num"))?;
        let card_number =
            if card.len() < MIN_CARD_DIGITS && card.bytes().all(|b| b.is_ascii_digit()) {
                format!("{card:0>MIN_CARD_DIGITS$}")
            } else {
                card.to_owned()
            };
        let amount = self
            .number(c.amount, "amt")?
            .ok_or(EventError::MissingField("amt"))?;
        let flag = self
            .cell(c.is_fraud)
            .ok_or(EventError::MissingField("is_fraud"))?;
        let is_fraud = parse_flag(flag).ok_or_else(|| {
            EventError::invalid("is_fraud", format_args!("must be 0/1, got {flag:?}"))
        })?;
        let merchant = self
            .cell(c.merchant)
            .map(|m| m.strip_prefix(MERCHANT_PREFIX).unwrap_or(m).to_owned());
        let category = self.cell(c.category).map(str::to_owned);
        let channel = category.as_deref().and_then(|cat| {
            if cat.ends_with("_net") {
                Some(Channel::Online)
            } else if cat.ends_with("_pos") {
                Some(Channel::Pos)
            } else {
                None
            }
        });
        let tx = Transaction {
            transaction_id: self
                .cell(c.id)
                .ok_or(EventError::MissingField("trans_num"))?
                .to_owned(),
            timestamp,
            card_number,
            amount,
            customer_id: self.cell(c.account).map(str::to_owned),
            first_name: self.cell(c.first).map(str::to_owned),
            last_name: self.cell(c.last).map(str::to_owned),
            currency: "USD".to_owned(),
            merchant_id: merchant.clone(),
            merchant,
            category,
            channel,
            lat: self.number(c.lat, "merch_lat")?,
            lon: self.number(c.lon, "merch_long")?,
            home_lat: self.number(c.home_lat, "lat")?,
            home_lon: self.number(c.home_lon, "long")?,
            city: None,
            country: None,
        };
        tx.validate()?;
        Ok(LabelledTransaction {
            tx,
            label: Label {
                is_fraud,
                scenario: None,
            },
        })
    }
}

impl<R: BufRead> Iterator for SparkovReader<R> {
    type Item = (u64, Result<LabelledTransaction, EventError>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.pending.take() {
            self.done = true;
            return Some((1, Err(e)));
        }
        loop {
            match self.inner.read_record(&mut self.record) {
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Ok(true) => {
                    if self.record.iter().all(|f| f.trim().is_empty()) {
                        continue;
                    }
                    let line = self.record.position().map_or(0, |p| p.line());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<(u64, Result<LabelledTransaction, EventError>)> {
        SparkovReader::new(text.as_bytes()).collect()
    }

    fn ok(item: &(u64, Result<LabelledTransaction, EventError>)) -> &LabelledTransaction {
        item.1
            .as_ref()
            .unwrap_or_else(|e| panic!("line {}: {e}", item.0))
    }

    /// Two rows in the layout of the widely shared comma-separated files (leading unnamed
    /// index column, quoted merchant names with commas), written by hand.
    const KAGGLE: &str = "\
,trans_date_trans_time,cc_num,merchant,category,amt,first,last,gender,street,city,state,zip,lat,long,city_pop,job,dob,trans_num,unix_time,merch_lat,merch_long,is_fraud
0,2019-01-01 00:00:18,2703186189652095,\"fraud_Rippin, Kub and Mann\",misc_net,4.97,Jennifer,Banks,F,561 Perry Cove,Moravian Falls,NC,28654,36.0788,-81.1781,3495,\"Psychologist, counselling\",1988-03-09,0b242abb623afc578575680df30655b9,1325376018,36.011293,-82.048315,0
1,2019-01-02 01:06:37,60416207185,fraud_Heller-Langosh,gas_transport,107.23,Stephanie,Gill,F,43039 Riley Greens Suite 393,Orient,WA,99160,48.8878,-118.2105,149,Special educational needs teacher,1978-06-21,1f76529f8574734946361c461b024d99,1325466397,49.159047,-118.186462,1
";

    #[test]
    fn comma_separated_files_map_onto_the_canonical_schema() {
        let items = read(KAGGLE);
        assert_eq!(items.len(), 2);
        let a = ok(&items[0]);
        assert_eq!(items[0].0, 2);
        assert_eq!(a.tx.transaction_id, "0b242abb623afc578575680df30655b9");
        assert_eq!(a.tx.timestamp.to_rfc3339(), "2019-01-01T00:00:18+00:00");
        assert_eq!(a.tx.card_number, "2703186189652095");
        assert_eq!(a.tx.amount, 4.97);
        assert_eq!(a.tx.merchant.as_deref(), Some("Rippin, Kub and Mann"));
        assert_eq!(a.tx.merchant_id, a.tx.merchant);
        assert_eq!(a.tx.category.as_deref(), Some("misc_net"));
        assert_eq!(a.tx.channel, Some(Channel::Online));
        assert_eq!(a.tx.location(), Some((36.011293, -82.048315)));
        assert_eq!(a.tx.home(), Some((36.0788, -81.1781)));
        assert_eq!(a.tx.first_name.as_deref(), Some("Jennifer"));
        assert_eq!(
            a.tx.city, None,
            "the file's city is the cardholder's, not the shop's"
        );
        assert_eq!(a.tx.currency, "USD");
        assert!(!a.label.is_fraud);
        assert_eq!(a.label.scenario, None);
        let b = ok(&items[1]);
        assert_eq!(b.tx.card_number, "060416207185", "11 digits padded to 12");
        assert_eq!(
            b.tx.channel, None,
            "gas_transport says nothing about the channel"
        );
        assert!(b.label.is_fraud);
    }

    #[test]
    fn the_generators_pipe_separated_files_are_read_too() {
        let text = "\
ssn|cc_num|first|last|gender|street|city|state|zip|lat|long|city_pop|job|dob|acct_num|profile|trans_num|trans_date|trans_time|unix_time|category|amt|is_fraud|merchant|merch_lat|merch_long
347-03-9639|213193010310510|Kayla|Ramirez|F|82997 Kristen Valley|Douglasville|GA|30134|33.7606|-84.7477|105268|Plant breeder|1978-03-06|465378164447|adults_2550_female_urban.json|7cb3518347f9512d60111496a29428b6|2023-06-18|00:00:20|1687046420|shopping_pos|366.06|1|fraud_Medhurst PLC|32.925960|-84.578298
";
        let items = read(text);
        assert_eq!(items.len(), 1);
        let a = ok(&items[0]);
        assert_eq!(a.tx.timestamp.to_rfc3339(), "2023-06-18T00:00:20+00:00");
        assert_eq!(a.tx.card_number, "213193010310510");
        assert_eq!(a.tx.customer_id.as_deref(), Some("465378164447"));
        assert_eq!(a.tx.merchant.as_deref(), Some("Medhurst PLC"));
        assert_eq!(a.tx.channel, Some(Channel::Pos));
        assert!(a.label.is_fraud);
    }

    #[test]
    fn bad_rows_are_reported_with_their_line_and_skipped() {
        let text = "\
trans_date_trans_time,cc_num,merchant,category,amt,trans_num,is_fraud,merch_lat,merch_long
2019-01-01 00:00:18,4111111111111111,m,misc_pos,1.00,a,0,1,2
yesterday,4111111111111111,m,misc_pos,1.00,b,0,1,2
2019-01-01 00:00:19,4111111111111111,m,misc_pos,lots,c,0,1,2
2019-01-01 00:00:20,4111111111111111,m,misc_pos,1.00,d,maybe,1,2
2019-01-01 00:00:21,4111111111111111,m,misc_pos,1.00,e,0,95,2
2019-01-01 00:00:22,41111111x1111111,m,misc_pos,1.00,f,0,1,2
2019-01-01 00:00:23,4111111111111111,m,misc_pos
2019-01-01 00:00:24,4111111111111111,m,misc_pos,-3,g,0,1,2
2019-01-01 00:00:25,4111111111111111,m,misc_pos,2.50,h,1,1,2
";
        let summary: Vec<(u64, bool)> = read(text).iter().map(|(l, r)| (*l, r.is_ok())).collect();
        assert_eq!(
            summary,
            vec![
                (2, true),
                (3, false),
                (4, false),
                (5, false),
                (6, false),
                (7, false),
                (8, false),
                (9, false),
                (10, true)
            ]
        );
    }

    #[test]
    fn a_header_without_required_columns_fails_once() {
        let items = read("cc_num,amt,is_fraud\n4111111111111111,1,0\n");
        assert_eq!(items.len(), 1);
        assert!(matches!(
            items[0].1,
            Err(EventError::MissingColumn("trans_num"))
        ));
        let items = read("cc_num,amt,is_fraud,trans_num\n4111111111111111,1,0,a\n");
        assert!(matches!(
            items[0].1,
            Err(EventError::MissingColumn("trans_date_trans_time"))
        ));
        assert_eq!(read("").len(), 1);
    }

    #[test]
    fn unix_time_is_the_last_resort() {
        let items =
            read("cc_num,amt,is_fraud,trans_num,unix_time\n4111111111111111,1,0,a,1325376018\n");
        assert_eq!(
            ok(&items[0]).tx.timestamp.to_rfc3339(),
            "2012-01-01T00:00:18+00:00"
        );
    }
}
