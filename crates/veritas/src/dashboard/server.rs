//! The dashboard's HTTP server (axum): the page and its assets, the snapshot API, the
//! server-sent event stream, Prometheus metrics and a health check.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::stats::LiveStats;

/// How often `/events` pushes a snapshot.
pub const EVENTS_PERIOD: Duration = Duration::from_secs(1);
/// Reconnection delay suggested to `EventSource` clients.
pub const EVENTS_RETRY: Duration = Duration::from_secs(2);

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// The page may load nothing from anywhere but this server.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[derive(Clone)]
struct AppState {
    stats: Arc<LiveStats>,
    registry: prometheus::Registry,
    /// Becomes `true` when the server shuts down; event streams end then.
    stop: watch::Receiver<bool>,
}

/// Serves the dashboard on `listener` until `shutdown` completes, then stops accepting, ends
/// every `/events` stream and returns once open connections have closed.
///
/// `registry` is what `/metrics` exposes: register the broker's, the detector's and the
/// producer's metrics in it (it is a cheap handle; clones share the metrics).
pub async fn serve<F>(
    listener: TcpListener,
    stats: Arc<LiveStats>,
    registry: prometheus::Registry,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = router(AppState {
        stats,
        registry,
        stop: stop_rx,
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Infinite event streams would otherwise keep the graceful shutdown waiting.
            let _ = stop_tx.send(true);
        })
        .await
}

/// Serves only `/metrics` (Prometheus text from `registry`) and `/healthz` until `shutdown`
/// completes: what `veritas broker` and `veritas detect` expose with `--metrics-listen`.
pub async fn serve_metrics<F>(
    listener: TcpListener,
    registry: prometheus::Registry,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = Router::new()
        .route("/metrics", get(registry_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(registry);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn registry_metrics(State(registry): State<prometheus::Registry>) -> Response {
    encode_metrics(&registry)
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
        .route("/api/snapshot", get(snapshot))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    let mut response = asset("text/html; charset=utf-8", INDEX_HTML);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

async fn snapshot(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(state.stats.snapshot()),
    )
        .into_response()
}

async fn events(State(state): State<AppState>) -> Response {
    let mut ticks = tokio::time::interval(EVENTS_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let initial = (state, ticks, 0u64);
    let stream = futures_util::stream::unfold(initial, |(mut state, mut ticks, seq)| async move {
        if *state.stop.borrow() {
            return None;
        }
        tokio::select! {
            _ = ticks.tick() => {}
            // Shutdown, or the server is gone: end the stream.
            _ = state.stop.wait_for(|stop| *stop) => return None,
        }
        let event = Event::default()
            .event("snapshot")
            .id(seq.to_string())
            .retry(EVENTS_RETRY)
            .json_data(state.stats.snapshot())
            .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()));
        Some((Ok::<_, Infallible>(event), (state, ticks, seq + 1)))
    });
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            // Reverse proxies (nginx) would otherwise buffer the stream.
            (HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Sse::new(stream),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    encode_metrics(&state.registry)
}

fn encode_metrics(registry: &prometheus::Registry) -> Response {
    let encoder = TextEncoder::new();
    match encoder.encode_to_string(&registry.gather()) {
        Ok(body) => (
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response(),
    }
}

/// A listening socket for the dashboard, and where it ended up.
#[derive(Debug)]
pub struct BoundListener {
    /// The socket, ready for [`serve`].
    pub listener: TcpListener,
    /// The address asked for.
    pub requested: SocketAddr,
    /// The address bound.
    pub local_addr: SocketAddr,
}

impl BoundListener {
    /// Whether another port than the one requested was taken because it was busy.
    pub fn moved(&self) -> bool {
        self.requested.port() != 0 && self.requested.port() != self.local_addr.port()
    }

    /// The page's URL; an unspecified address (`0.0.0.0`, `::`) is shown as loopback.
    pub fn url(&self) -> String {
        let ip = match self.local_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}/", SocketAddr::new(ip, self.local_addr.port()))
    }

    /// One line for the terminal: the URL, and why it is not the requested port if so.
    pub fn message(&self) -> String {
        if self.moved() {
            format!(
                "dashboard: port {} is in use, serving on {} instead",
                self.requested.port(),
                self.url()
            )
        } else {
            format!("dashboard: {}", self.url())
        }
    }
}

/// Binds `requested`, or when its port is in use the next ports up, trying `attempts` ports
/// in all (at least one). Port 0 binds an ephemeral port. Errors other than "address in use"
/// are returned at once, with the address in the message.
pub async fn bind_next_free(requested: SocketAddr, attempts: u16) -> io::Result<BoundListener> {
    let mut addr = requested;
    let mut tried = 0u16;
    loop {
        tried += 1;
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                let local_addr = listener.local_addr()?;
                return Ok(BoundListener {
                    listener,
                    requested,
                    local_addr,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && requested.port() != 0 => {
                let next = addr.port().checked_add(1).filter(|_| tried < attempts);
                match next {
                    Some(port) => addr.set_port(port),
                    None => {
                        return Err(io::Error::new(
                            io::ErrorKind::AddrInUse,
                            format!(
                                "cannot serve the dashboard: ports {} to {} on {} are all in use; \
                                 choose another address",
                                requested.port(),
                                addr.port(),
                                requested.ip()
                            ),
                        ))
                    }
                }
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot serve the dashboard on {addr}: {e}"),
                ))
            }
        }
    }
}
