//! `veritas broker`: the embedded Kafka-compatible broker as a standalone server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use veritas_broker::{Broker, BrokerConfig};
use veritas_log::FlushPolicy;

/// Flags of `veritas broker`. Every flag can also be set through its `VERITAS_*` variable.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// Address to listen on (loopback unless you mean otherwise).
    #[arg(long, env = "VERITAS_LISTEN", default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,
    /// Directory for topic data and metadata.
    #[arg(long, env = "VERITAS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// `host:port` advertised to clients in Metadata (default: the listen address).
    #[arg(long, env = "VERITAS_ADVERTISED_LISTENER", value_parser = parse_host_port)]
    pub advertised_listener: Option<(String, u16)>,
    /// Partitions of auto-created topics (Kafka `num.partitions`).
    #[arg(long, env = "VERITAS_DEFAULT_PARTITIONS", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=10000))]
    pub default_partitions: i32,
    /// Create missing topics when clients ask for their metadata (Kafka `auto.create.topics.enable`).
    #[arg(long, env = "VERITAS_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,
    /// When to fsync: `interval:MS`, `bytes:N`, `every-produce`, or a comma-separated mix.
    #[arg(long, env = "VERITAS_FLUSH", default_value = "interval:1000", value_parser = parse_flush)]
    pub flush: FlushPolicy,
    /// Default `retention.ms` for topics (-1: keep forever).
    #[arg(
        long,
        env = "VERITAS_RETENTION_MS",
        default_value_t = 604_800_000,
        allow_negative_numbers = true
    )]
    pub retention_ms: i64,
    /// Default `segment.bytes` for topics.
    #[arg(long, env = "VERITAS_SEGMENT_BYTES", default_value_t = 1 << 30)]
    pub segment_bytes: u64,
    /// Largest request accepted, in bytes (Kafka `socket.request.max.bytes`).
    #[arg(long, env = "VERITAS_MAX_REQUEST_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Most concurrent client connections.
    #[arg(long, env = "VERITAS_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Close connections silent for this many milliseconds (Kafka `connections.max.idle.ms`).
    #[arg(long, env = "VERITAS_IDLE_TIMEOUT_MS", default_value_t = 600_000)]
    pub idle_timeout_ms: u64,
    /// This broker's node id.
    #[arg(long, env = "VERITAS_NODE_ID", default_value_t = 0)]
    pub node_id: i32,
    /// Serve Prometheus metrics at `http://ADDR/metrics`.
    #[arg(long, env = "VERITAS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

impl BrokerArgs {
    /// The broker configuration these flags describe.
    pub fn config(&self) -> BrokerConfig {
        let mut c = BrokerConfig::new(self.data_dir.clone());
        c.listen = self.listen;
        c.advertised_listener = self.advertised_listener.clone();
        c.node_id = self.node_id;
        c.default_partitions = self.default_partitions;
        c.auto_create_topics = self.auto_create_topics;
        c.max_frame_bytes = self.max_request_bytes;
        c.max_connections = self.max_connections;
        c.idle_timeout = Duration::from_millis(self.idle_timeout_ms);
        c.log_defaults.flush = self.flush;
        c.log_defaults.retention_ms = self.retention_ms;
        c.log_defaults.segment_bytes = self.segment_bytes;
        c
    }
}

/// Parses `host:port`.
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT, got '{s}'"))?;
    let port: u16 = port.parse().map_err(|_| format!("bad port in '{s}'"))?;
    if host.is_empty() {
        return Err(format!("empty host in '{s}'"));
    }
    Ok((host.trim_matches(|c| c == '[' || c == ']').to_owned(), port))
}

/// Parses a flush policy: `every-produce`, `interval:MS`, `bytes:N`, comma-separated.
pub fn parse_flush(s: &str) -> Result<FlushPolicy, String> {
    let mut p = FlushPolicy::manual();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once(':') {
            None if part == "every-produce" => p.every_bytes = Some(0),
            None if part == "none" => {}
            Some(("interval", ms)) => {
                p.interval_ms = Some(ms.parse().map_err(|_| format!("bad interval '{ms}'"))?)
            }
            Some(("bytes", n)) => p.every_bytes = Some(n.parse().map_err(|_| format!("bad byte count '{n}'"))?),
            _ => {
                return Err(format!(
                    "unknown flush policy '{part}' (expected every-produce, interval:MS, bytes:N or none)"
                ))
            }
        }
    }
    Ok(p)
}

/// Runs the broker until SIGINT or SIGTERM, then shuts it down cleanly.
pub fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let registry = prometheus::Registry::new();
        let broker = Broker::start(args.config(), &registry)
            .await
            .context("starting the broker")?;
        let (metrics_stop, metrics_task) =
            spawn_metrics(args.metrics_listen, registry.clone()).await?;
        eprintln!(
            "veritas broker listening on {} (bootstrap.servers={}), data in {}",
            broker.local_addr(),
            broker.bootstrap_servers(),
            args.data_dir.display()
        );
        wait_for_signal().await?;
        tracing::info!("shutting down");
        broker
            .shutdown()
            .await
            .context("shutting down the broker")?;
        let _ = metrics_stop.send(());
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        Ok(())
    })
}

/// Starts the `/metrics` endpoint when an address is given; send on the returned channel to
/// stop it.
pub async fn spawn_metrics(
    listen: Option<SocketAddr>,
    registry: prometheus::Registry,
) -> anyhow::Result<(
    tokio::sync::oneshot::Sender<()>,
    Option<tokio::task::JoinHandle<std::io::Result<()>>>,
)> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let Some(addr) = listen else {
        return Ok((tx, None));
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint on {addr}"))?;
    eprintln!("metrics: http://{}/metrics", listener.local_addr()?);
    let task = tokio::spawn(crate::dashboard::serve_metrics(
        listener,
        registry,
        async move {
            let _ = rx.await;
        },
    ));
    Ok((tx, Some(task)))
}

/// Completes at the first SIGINT or SIGTERM.
pub async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_policies_parse() {
        assert_eq!(parse_flush("every-produce").unwrap().every_bytes, Some(0));
        let p = parse_flush("interval:250,bytes:1048576").unwrap();
        assert_eq!((p.interval_ms, p.every_bytes), (Some(250), Some(1048576)));
        assert!(parse_flush("sometimes").is_err());
        assert_eq!(
            parse_host_port("kafka:9092").unwrap(),
            ("kafka".into(), 9092)
        );
        assert!(parse_host_port("9092").is_err());
    }
}
