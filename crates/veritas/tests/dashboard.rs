//! The dashboard server as a browser and a Prometheus scraper see it: a real server on an
//! ephemeral port, fed by real `LiveStats::record_*` calls, spoken to over plain HTTP/1.1.
//!
//! `veritas` is a binary crate, so the module is compiled into this test from its source.

// Compiled on its own here, parts of the module only the demo uses are unused.
#[allow(dead_code, unused_imports)]
#[path = "../src/dashboard/mod.rs"]
mod dashboard;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashboard::stats::{Outcome, PartitionView, Snapshot, TopicView, HISTORY_SECS};
use dashboard::{bind_next_free, serve, BrokerMode, BrokerView, DecisionView, InfoView, LiveStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use veritas_detect::Verdict;

/// Generous: the machine may be busy compiling.
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// A running server.

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(stats: Arc<LiveStats>, registry: prometheus::Registry) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, stats, registry, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("server stops within the deadline")
            .expect("server task")
            .expect("server result");
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client: enough to read what the server sends, strictly.

#[derive(Debug)]
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
}

async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, BTreeMap<String, String>) {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).expect("ASCII head");
            buf.drain(..end + 4);
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap();
            let mut parts = status_line.splitn(3, ' ');
            assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
            let status = parts.next().unwrap().parse().unwrap();
            let headers = lines
                .map(|l| {
                    let (k, v) = l.split_once(':').expect("header line");
                    (k.trim().to_ascii_lowercase(), v.trim().to_owned())
                })
                .collect();
            return (status, headers);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Removes one complete chunk from `buf` if there is one: `Some(Some(data))`, `Some(None)` for
/// the last (empty) chunk, `None` when more bytes are needed.
fn take_chunk(buf: &mut Vec<u8>) -> Option<Option<Vec<u8>>> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let size_line = std::str::from_utf8(&buf[..line_end]).unwrap();
    let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16).unwrap();
    if buf.len() < line_end + 2 + size + 2 {
        return None;
    }
    let data = buf[line_end + 2..line_end + 2 + size].to_vec();
    assert_eq!(&buf[line_end + 2 + size..line_end + 4 + size], b"\r\n");
    buf.drain(..line_end + 4 + size);
    Some((size > 0).then_some(data))
}

async fn get(addr: SocketAddr, path: &str) -> Response {
    tokio::time::timeout(DEADLINE, async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let (status, headers) = read_head(&mut stream, &mut buf).await;
        stream.read_to_end(&mut buf).await.unwrap();
        let body = if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
            let mut body = Vec::new();
            while let Some(Some(data)) = take_chunk(&mut buf) {
                body.extend(data);
            }
            body
        } else {
            if let Some(len) = headers.get("content-length") {
                assert_eq!(
                    buf.len(),
                    len.parse::<usize>().unwrap(),
                    "{path}: body length"
                );
            }
            buf
        };
        Response {
            status,
            headers,
            body,
        }
    })
    .await
    .unwrap_or_else(|_| panic!("GET {path} timed out"))
}

/// One server-sent event.
#[derive(Debug, Default)]
struct SseEvent {
    event: String,
    id: String,
    retry: Option<u64>,
    data: String,
}

/// An open `/events` stream.
struct EventStream {
    stream: TcpStream,
    buf: Vec<u8>,
    text: String,
}

impl EventStream {
    async fn open(addr: SocketAddr) -> EventStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request =
            format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let (status, headers) = tokio::time::timeout(DEADLINE, read_head(&mut stream, &mut buf))
            .await
            .expect("/events answers");
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(headers["transfer-encoding"], "chunked");
        EventStream {
            stream,
            buf,
            text: String::new(),
        }
    }

    /// The next event, or `None` when the server ends the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                for line in block.lines().filter(|l| !l.is_empty()) {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => event.event = value.to_owned(),
                        "id" => event.id = value.to_owned(),
                        "retry" => event.retry = Some(value.parse().unwrap()),
                        "data" => {
                            if !event.data.is_empty() {
                                event.data.push('\n');
                            }
                            event.data.push_str(value);
                        }
                        "" => {} // comment
                        other => panic!("unknown SSE field {other:?}"),
                    }
                }
                return Some(event);
            }
            match take_chunk(&mut self.buf) {
                Some(Some(data)) => self.text.push_str(std::str::from_utf8(&data).unwrap()),
                Some(None) => return None,
                None => {
                    let mut chunk = [0u8; 16384];
                    let n = self.stream.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return None;
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A strict parser of the Prometheus text exposition format (version 0.0.4).

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// Parses an exposition, checking: every line is a `# HELP`, `# TYPE`, comment or sample; names
/// and label names are valid; label values are properly quoted and escaped; `TYPE` comes at most
/// once per family and before its samples; a sample belongs to the family last typed (with the
/// `_bucket`/`_sum`/`_count` suffixes of histograms and summaries); the text ends with a newline.
fn parse_prometheus(text: &str) -> Result<(BTreeMap<String, String>, Vec<Sample>), String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("exposition does not end with a newline".into());
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut current: Option<(String, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match parts.next() {
                Some("HELP") => {
                    let name = parts.next().ok_or_else(|| at("HELP without name".into()))?;
                    if !is_metric_name(name) {
                        return Err(at(format!("bad metric name {name:?}")));
                    }
                }
                Some("TYPE") => {
                    let name = parts.next().ok_or_else(|| at("TYPE without name".into()))?;
                    let kind = parts.next().ok_or_else(|| at("TYPE without type".into()))?;
                    if !is_metric_name(name) {
                        return Err(at(format!("bad metric name {name:?}")));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind:?}")));
                    }
                    if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(at(format!("second TYPE for {name}")));
                    }
                    current = Some((name.to_owned(), kind.to_owned()));
                }
                _ => {}
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        // name{labels} value [timestamp]
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let close;
            loop {
                let (start, c) = chars.next().ok_or_else(|| at("unclosed labels".into()))?;
                if c == '}' {
                    close = start;
                    break;
                }
                if c == ',' {
                    continue;
                }
                let eq = after[start..]
                    .find('=')
                    .ok_or_else(|| at("label without '='".into()))?
                    + start;
                let label = &after[start..eq];
                if !is_label_name(label) {
                    return Err(at(format!("bad label name {label:?}")));
                }
                while chars.peek().is_some_and(|&(i, _)| i < eq) {
                    chars.next();
                }
                if chars.next().map(|(_, c)| c) != Some('=')
                    || chars.next().map(|(_, c)| c) != Some('"')
                {
                    return Err(at("label value not quoted".into()));
                }
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => return Err(at(format!("bad escape {other:?}"))),
                        },
                        Some('\n') | None => return Err(at("unterminated label value".into())),
                        Some(c) => value.push(c),
                    }
                }
                if labels.insert(label.to_owned(), value).is_some() {
                    return Err(at(format!("label {label} twice")));
                }
                match chars.peek().map(|&(_, c)| c) {
                    Some(',') | Some('}') => {}
                    _ => return Err(at("expected ',' or '}' after a label".into())),
                }
            }
            rest = &after[close + 1..];
        }
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?;
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| at(format!("bad timestamp {ts:?}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let (family, kind) = current
            .as_ref()
            .ok_or_else(|| at("sample before any TYPE".into()))?;
        let belongs = name == family
            || (matches!(kind.as_str(), "histogram" | "summary")
                && [
                    format!("{family}_sum"),
                    format!("{family}_count"),
                    format!("{family}_bucket"),
                ]
                .iter()
                .any(|n| n == name));
        if !belongs {
            return Err(at(format!("sample of {name} inside family {family}")));
        }
        if kind == "histogram" && name.ends_with("_bucket") && !labels.contains_key("le") {
            return Err(at("histogram bucket without le".into()));
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok((types, samples))
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?} in {samples:#?}"))
        .value
}

#[test]
fn the_strict_parser_rejects_malformed_expositions() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"2\"} 3\n";
    let (_, samples) = parse_prometheus(ok).unwrap();
    assert_eq!(samples[0].labels["x"], "1\"2");
    for bad in [
        "a_total 1\n",                               // no TYPE
        "# TYPE a counter\na 1",                     // no final newline
        "# TYPE a counter\na{x=1} 1\n",              // unquoted
        "# TYPE a counter\na{x=\"1} 1\n",            // unterminated
        "# TYPE a counter\na 1 2 3\n",               // trailing
        "# TYPE a counter\nb 1\n",                   // wrong family
        "# TYPE a counter\n# TYPE a counter\na 1\n", // TYPE twice
        "# TYPE a counter\na one\n",                 // value
        "# TYPE 1a counter\n1a 1\n",                 // name
        "# TYPE a histogram\na_bucket 1\n",          // no le
        "# TYPE a counter\na{x=\"1\"y=\"2\"} 1\n",   // no comma
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Feeding.

fn view(
    id: &str,
    verdict: Verdict,
    label: Option<bool>,
    scenario: Option<&str>,
    latency_us: u64,
) -> DecisionView {
    DecisionView {
        transaction_id: id.to_owned(),
        card: "453201******0366".to_owned(),
        amount: 42.0,
        merchant: Some("Blue Bottle Coffee".to_owned()),
        score: match verdict {
            Verdict::Approve => 0.02,
            Verdict::Review => 0.55,
            Verdict::Decline => 0.93,
        },
        verdict,
        reasons: vec!["velocity_burst: 6 earlier transactions in the last 10 min".to_owned()],
        latency_us,
        event_time_ms: 1_735_689_600_000,
        label,
        scenario: scenario.map(str::to_owned),
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn page_and_its_assets_are_served_from_the_binary() {
    let server = Server::start(Arc::new(LiveStats::new()), prometheus::Registry::new()).await;
    let page = get(server.addr, "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert!(page
        .header("content-security-policy")
        .contains("default-src 'self'"));
    let html = page.text();
    for needle in [
        "data-testid=\"events-per-sec\"",
        "data-testid=\"decisions-per-sec\"",
        "data-testid=\"precision\"",
        "data-testid=\"recall\"",
        "data-testid=\"f1\"",
        "data-testid=\"dlq-count\"",
        "data-testid=\"total-processed\"",
        "id=\"recent-decisions\"",
        "id=\"missed-fraud\"",
        "id=\"broker-topics\"",
        "id=\"lag-bars\"",
        "<canvas id=\"latency-chart\"",
        "<canvas id=\"throughput-chart\"",
    ] {
        assert!(html.contains(needle), "page lacks {needle}");
    }

    // Every local asset the page references is served, with its type; nothing is remote.
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            let url = &rest[..rest.find('"').unwrap()];
            assert!(url.starts_with('/'), "non-local reference {url}");
            assets.push(url.to_owned());
        }
    }
    for (path, kind) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        assert!(assets.iter().any(|a| a == path), "page does not use {path}");
        let r = get(server.addr, path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").starts_with(kind), "{path}");
        assert!(r.body.len() > 200, "{path} is suspiciously small");
        if path != "/favicon.svg" {
            let text = r.text();
            for remote in ["http://", "https://", "@import", "url("] {
                assert!(!text.contains(remote), "{path} references {remote}");
            }
        }
    }
    // The footer links to the endpoints (the endless event stream is tested on its own).
    for link in assets
        .iter()
        .filter(|a| !a.starts_with("/assets") && *a != "/events")
    {
        assert_eq!(get(server.addr, link).await.status, 200, "{link}");
    }

    let health = get(server.addr, "/healthz").await;
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    assert_eq!(get(server.addr, "/no-such-page").await.status, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_are_strict_prometheus_text_and_counters_move_between_scrapes() {
    let registry = prometheus::Registry::new();
    let counter = prometheus::IntCounterVec::new(
        prometheus::Opts::new("veritas_test_events_total", "Events seen by the test."),
        &["topic"],
    )
    .unwrap();
    registry.register(Box::new(counter.clone())).unwrap();
    let gauge = prometheus::IntGauge::new("veritas_test_lag", "Lag \"quoted\" help.").unwrap();
    registry.register(Box::new(gauge.clone())).unwrap();
    let histogram = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
        "veritas_test_latency_seconds",
        "Latency.",
    ))
    .unwrap();
    registry.register(Box::new(histogram.clone())).unwrap();
    counter.with_label_values(&["tx \"in\"\n"]).inc_by(3);
    histogram.observe(0.004);
    gauge.set(17);

    let server = Server::start(Arc::new(LiveStats::new()), registry).await;
    let first = get(server.addr, "/metrics").await;
    assert_eq!(first.status, 200);
    assert!(first
        .header("content-type")
        .starts_with("text/plain; version=0.0.4"));
    let (types, samples) = parse_prometheus(&first.text()).unwrap();
    assert_eq!(types["veritas_test_events_total"], "counter");
    assert_eq!(types["veritas_test_latency_seconds"], "histogram");
    let labels = [("topic", "tx \"in\"\n")];
    assert_eq!(sample(&samples, "veritas_test_events_total", &labels), 3.0);
    assert_eq!(sample(&samples, "veritas_test_lag", &[]), 17.0);
    assert_eq!(
        sample(&samples, "veritas_test_latency_seconds_count", &[]),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "veritas_test_latency_seconds_bucket",
            &[("le", "+Inf")]
        ),
        1.0
    );

    counter.with_label_values(&["tx \"in\"\n"]).inc_by(5);
    histogram.observe(0.2);
    let (_, samples) = parse_prometheus(&get(server.addr, "/metrics").await.text()).unwrap();
    assert_eq!(sample(&samples, "veritas_test_events_total", &labels), 8.0);
    assert_eq!(
        sample(&samples, "veritas_test_latency_seconds_count", &[]),
        2.0
    );
    server.shutdown().await;
}

#[tokio::test]
async fn snapshot_reflects_the_recorded_decisions() {
    let stats = Arc::new(LiveStats::new());
    stats.set_info(InfoView {
        mode: BrokerMode::External,
        bootstrap_servers: "kafka-1:9092,kafka-2:9092".into(),
        model_version: "gbdt-v1-test".into(),
        target_rate: Some(250.0),
        fraud_rate: Some(0.02),
        input_topic: "transactions".into(),
        decisions_topic: "decisions".into(),
        dlq_topic: "transactions.dlq".into(),
        group_id: "veritas-detector".into(),
    });
    stats.record_produced(15);
    stats.record_produced(5);
    stats.record_dlq();
    stats.set_lag(1, 7);
    stats.set_lag(0, 5);
    stats.set_broker(BrokerView {
        topics: vec![TopicView {
            name: "transactions".into(),
            partitions: vec![PartitionView {
                partition: 0,
                log_start_offset: 0,
                log_end_offset: 20,
                size_bytes: Some(4096),
            }],
        }],
    });

    // A hand-made set. At DECLINE: TP 3, FP 1, FN 2, TN 12. At REVIEW-or-DECLINE: TP 4, FP 3,
    // FN 1, TN 10. One unlabelled decision counts nowhere in quality.
    let mut n = 0;
    let mut record = |verdict, label, scenario, times| {
        for _ in 0..times {
            n += 1;
            stats.record_decision(&view(
                &format!("tx-{n:02}"),
                verdict,
                label,
                scenario,
                n * 100,
            ));
        }
    };
    record(Verdict::Decline, Some(true), Some("card_testing"), 3);
    record(Verdict::Review, Some(true), Some("stolen_card"), 1);
    record(Verdict::Approve, Some(true), Some("stolen_card"), 1);
    record(Verdict::Decline, Some(false), None, 1);
    record(Verdict::Review, Some(false), None, 2);
    record(Verdict::Approve, Some(false), None, 10);
    record(Verdict::Decline, None, None, 1);

    let server = Server::start(stats.clone(), prometheus::Registry::new()).await;
    let response = get(server.addr, "/api/snapshot").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), "application/json");
    let raw: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(raw["quality"]["decline"]["fn"], 2, "confusion field names");
    assert_eq!(raw["info"]["mode"], "external");
    assert_eq!(raw["recent"][0]["verdict"], "DECLINE");
    let snap: Snapshot = serde_json::from_slice(&response.body).unwrap();

    let t = snap.totals;
    assert_eq!(
        (
            t.produced,
            t.decisions,
            t.approve,
            t.review,
            t.decline,
            t.dlq
        ),
        (20, 19, 11, 3, 5, 1)
    );
    assert_eq!((t.labelled, t.frauds), (18, 5));

    let d = snap.quality.decline;
    assert_eq!((d.tp, d.fp, d.fn_, d.tn), (3, 1, 2, 12));
    assert_eq!(d.precision, Some(0.75));
    assert_eq!(d.recall, Some(0.6));
    assert!((d.f1.unwrap() - 2.0 * 0.75 * 0.6 / 1.35).abs() < 1e-12);
    let f = snap.quality.flagged;
    assert_eq!((f.tp, f.fp, f.fn_, f.tn), (4, 3, 1, 10));
    assert_eq!(f.precision, Some(4.0 / 7.0));
    assert_eq!(f.recall, Some(0.8));
    let (p, r) = (4.0 / 7.0, 0.8);
    assert!((f.f1.unwrap() - 2.0 * p * r / (p + r)).abs() < 1e-12);

    let scenarios: Vec<_> = snap
        .scenarios
        .iter()
        .map(|s| {
            (
                s.scenario.as_str(),
                s.frauds,
                s.declined,
                s.reviewed,
                s.missed,
            )
        })
        .collect();
    assert_eq!(
        scenarios,
        [("card_testing", 3, 3, 0, 0), ("stolen_card", 2, 0, 1, 1)]
    );

    // Flagged decisions, newest first, with their outcome; the missed fraud on its own list.
    let recent: Vec<_> = snap
        .recent
        .iter()
        .map(|r| (r.decision.transaction_id.as_str(), r.outcome))
        .collect();
    assert_eq!(
        recent,
        [
            ("tx-19", Outcome::Unlabelled),
            ("tx-08", Outcome::FalsePositive),
            ("tx-07", Outcome::FalsePositive),
            ("tx-06", Outcome::FalsePositive),
            ("tx-04", Outcome::Caught),
            ("tx-03", Outcome::Caught),
            ("tx-02", Outcome::Caught),
            ("tx-01", Outcome::Caught),
        ]
    );
    assert_eq!(
        snap.recent[4].decision,
        view(
            "tx-04",
            Verdict::Review,
            Some(true),
            Some("stolen_card"),
            400
        )
    );
    assert_eq!(snap.missed.len(), 1);
    assert_eq!(snap.missed[0].decision.transaction_id, "tx-05");
    assert_eq!(snap.missed[0].outcome, Outcome::Missed);

    assert_eq!(snap.latency.all.count, 19);
    // Two significant digits: the histogram answers within 1 %.
    let max = snap.latency.all.max_us.unwrap();
    assert!((1900..=1919).contains(&max), "max {max}");
    assert_eq!(
        snap.lag
            .iter()
            .map(|l| (l.partition, l.lag))
            .collect::<Vec<_>>(),
        [(0, 5), (1, 7)]
    );
    assert_eq!(snap.total_lag, 12);
    let broker = snap.broker.as_ref().unwrap();
    assert_eq!(broker.view.topics[0].partitions[0].log_end_offset, 20);
    assert_eq!(snap.info.model_version, "gbdt-v1-test");
    assert!(snap.series.len() <= HISTORY_SECS);
    assert_eq!(
        response.header("cache-control"),
        "no-store",
        "a snapshot is never cached"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn events_push_snapshots_whose_numbers_change() {
    let stats = Arc::new(LiveStats::new());
    let server = Server::start(stats.clone(), prometheus::Registry::new()).await;

    // Traffic keeps arriving while the page listens.
    let feeder = {
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for i in 0u64.. {
                tick.tick().await;
                stats.record_produced(3);
                let verdict = if i % 7 == 0 {
                    Verdict::Decline
                } else {
                    Verdict::Approve
                };
                stats.record_decision(&view(
                    &format!("tx-{i}"),
                    verdict,
                    Some(i % 7 == 0),
                    Some("card_testing"),
                    150 + i % 50,
                ));
            }
        })
    };

    let mut events = EventStream::open(server.addr).await;
    let started = Instant::now();
    let mut seen: Vec<(u64, Snapshot)> = Vec::new();
    while seen.len() < 2
        || seen
            .windows(2)
            .all(|w| w[0].1.totals.decisions == w[1].1.totals.decisions)
    {
        assert!(
            started.elapsed() < DEADLINE,
            "no changing snapshots in {DEADLINE:?}"
        );
        let event = tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("an event within the deadline")
            .expect("the stream stays open");
        assert_eq!(event.event, "snapshot");
        assert_eq!(event.retry, Some(2000));
        let id: u64 = event.id.parse().unwrap();
        if let Some((last, _)) = seen.last() {
            assert_eq!(id, last + 1, "ids count up");
        }
        seen.push((id, serde_json::from_str(&event.data).unwrap()));
    }
    let (first, last) = (&seen[0].1, &seen[seen.len() - 1].1);
    assert!(last.totals.decisions > first.totals.decisions);
    assert!(last.totals.produced > first.totals.produced);
    assert!(last.generated_at_ms >= first.generated_at_ms);
    assert!(!last.recent.is_empty());
    feeder.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_event_streams() {
    let server = Server::start(Arc::new(LiveStats::new()), prometheus::Registry::new()).await;
    let mut events = EventStream::open(server.addr).await;
    assert!(events.next().await.is_some());
    // Graceful shutdown would wait forever on an endless stream; it must end it instead.
    server.shutdown().await;
    let rest =
        tokio::time::timeout(DEADLINE, async { while events.next().await.is_some() {} }).await;
    assert!(rest.is_ok(), "the stream ended");
}

#[tokio::test]
async fn bind_next_free_moves_past_a_busy_port_and_says_so() {
    let busy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let busy_addr = busy.local_addr().unwrap();

    let bound = bind_next_free(busy_addr, 50).await.unwrap();
    assert_ne!(bound.local_addr.port(), busy_addr.port());
    assert!(bound.local_addr.port() > busy_addr.port());
    assert!(bound.moved());
    assert_eq!(bound.requested, busy_addr);
    let url = format!("http://127.0.0.1:{}/", bound.local_addr.port());
    assert_eq!(bound.url(), url);
    assert!(
        bound
            .message()
            .contains(&format!("port {} is in use", busy_addr.port()))
            && bound.message().contains(&url),
        "{}",
        bound.message()
    );

    // It is a working listener.
    let stats = Arc::new(LiveStats::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let addr = bound.local_addr;
    let task = tokio::spawn(serve(
        bound.listener,
        stats,
        prometheus::Registry::new(),
        async {
            let _ = stopped.await;
        },
    ));
    assert_eq!(get(addr, "/healthz").await.status, 200);
    let _ = stop.send(());
    task.await.unwrap().unwrap();

    // One attempt on a busy port: a clear error.
    let err = bind_next_free(busy_addr, 1).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("in use"), "{err}");

    // Port 0: an ephemeral port, not a move; the unspecified address shows as loopback.
    let any = bind_next_free("0.0.0.0:0".parse().unwrap(), 3)
        .await
        .unwrap();
    assert!(!any.moved());
    assert_eq!(
        any.url(),
        format!("http://127.0.0.1:{}/", any.local_addr.port())
    );
    assert_eq!(any.message(), format!("dashboard: {}", any.url()));
    drop(busy);
}
