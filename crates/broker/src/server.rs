//! The broker process: listener, connection tasks, background maintenance, shutdown.
//!
//! [`Broker::start`] opens the data directory (recovering it if the previous run did not shut
//! down cleanly), binds the listener and returns a handle. [`Broker::shutdown`] stops accepting,
//! lets every connection finish the request it is handling, flushes and closes every log and
//! only then writes the clean-shutdown marker, so a marker always means "nothing to recover".

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cluster::{Cluster, ClusterError};
use crate::config::BrokerConfig;
use crate::group::{CoordinatorTask, GroupCoordinator, GroupError};
use crate::metrics::BrokerMetrics;
use crate::producer_ids::ProducerIds;

/// Name of the marker written last by a clean shutdown and removed at startup.
pub const CLEAN_SHUTDOWN_MARKER: &str = ".clean-shutdown";
const LOCK_FILE: &str = ".lock";
const CLUSTER_ID_FILE: &str = "cluster-id";

/// Why the broker could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// The error.
        cause: std::io::Error,
    },
    /// Another broker holds the data directory.
    #[error("data directory {0} is in use by another broker")]
    Locked(PathBuf),
    /// Data directory I/O.
    #[error("data directory {path}: {cause}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        cause: std::io::Error,
    },
    /// Opening or closing topics failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Metrics registration failed (a name registered twice in one registry).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The group coordinator could not load its offsets log.
    #[error("group coordinator: {0}")]
    Groups(#[from] GroupError),
}

/// State shared by every connection: the topics, id allocation, metrics, identity.
pub struct Shared {
    /// Static configuration.
    pub config: BrokerConfig,
    /// Topics and partitions.
    pub cluster: Cluster,
    /// The group coordinator (consumer groups, committed offsets).
    pub groups: GroupCoordinator,
    pub(crate) producer_ids: ProducerIds,
    /// Metrics.
    pub metrics: BrokerMetrics,
    /// Cluster id, persisted in the data directory.
    pub cluster_id: String,
    /// Host and port given to clients in Metadata.
    pub advertised: (String, u16),
    /// Becomes `true` when shutdown starts; long polls end early.
    pub shutting_down: watch::Receiver<bool>,
    connections: AtomicUsize,
}

impl Shared {
    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutting_down.borrow()
    }
}

/// A running broker.
pub struct Broker {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept_task: tokio::task::JoinHandle<JoinSet<()>>,
    maintenance_task: tokio::task::JoinHandle<()>,
    groups_task: CoordinatorTask,
    _lock: fs::File,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BrokerError + '_ {
    move |cause| BrokerError::Io {
        path: path.to_owned(),
        cause,
    }
}

impl Broker {
    /// Opens the data directory and starts serving. Metrics are registered in `registry`.
    pub async fn start(config: BrokerConfig, registry: &Registry) -> Result<Broker, BrokerError> {
        let data_dir = config.data_dir.clone();
        fs::create_dir_all(&data_dir).map_err(io(&data_dir))?;
        let lock_path = data_dir.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(BrokerError::Locked(data_dir));
        }

        let marker = data_dir.join(CLEAN_SHUTDOWN_MARKER);
        let clean = marker.exists();
        if !clean && data_dir.join("meta").exists() {
            tracing::warn!(dir = %data_dir.display(), "previous run did not shut down cleanly; recovering logs");
        }
        let cluster_id = load_or_create_cluster_id(&data_dir)?;
        let started = Instant::now();
        let dir = data_dir.clone();
        let defaults = config.log_defaults.clone();
        let cluster = tokio::task::spawn_blocking(move || Cluster::open(&dir, defaults, clean))
            .await
            .map_err(|e| BrokerError::Io {
                path: data_dir.clone(),
                cause: std::io::Error::other(e),
            })??;
        tracing::info!(
            topics = cluster.topics().len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            clean,
            "opened data directory"
        );
        // From here on, a crash must trigger recovery: remove the marker before serving.
        if clean {
            fs::remove_file(&marker).map_err(io(&marker))?;
            fs::File::open(&data_dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&data_dir))?;
        }
        let producer_ids = ProducerIds::open(&data_dir.join("meta"))?;

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|cause| BrokerError::Bind {
                    addr: config.listen,
                    cause,
                })?;
        let local_addr = listener.local_addr().map_err(io(&data_dir))?;
        let advertised = config
            .advertised_listener
            .clone()
            .unwrap_or_else(|| (local_addr.ip().to_string(), local_addr.port()));
        let (stop, shutting_down) = watch::channel(false);
        let metrics = BrokerMetrics::new(registry)?;
        let (group_config, gauge) = (config.groups.clone(), metrics.groups.clone());
        let (cluster, groups) = tokio::task::spawn_blocking(move || {
            GroupCoordinator::open(&cluster, group_config, gauge).map(|g| (cluster, g))
        })
        .await
        .map_err(|e| BrokerError::Io {
            path: data_dir.clone(),
            cause: std::io::Error::other(e),
        })??;
        let groups_task = groups.start();
        let shared = Arc::new(Shared {
            config,
            cluster,
            groups,
            producer_ids,
            metrics,
            cluster_id,
            advertised,
            shutting_down,
            connections: AtomicUsize::new(0),
        });
        tracing::info!(listen = %local_addr, advertised = ?shared.advertised, "broker listening");

        let accept_task = tokio::spawn(accept_loop(listener, shared.clone()));
        let maintenance_task = tokio::spawn(crate::maintenance::run(shared.clone()));
        Ok(Broker {
            shared,
            local_addr,
            stop,
            accept_task,
            maintenance_task,
            groups_task,
            _lock: lock,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `host:port` for clients' `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        format!("{}:{}", self.shared.advertised.0, self.shared.advertised.1)
    }

    /// The broker's shared state (topics, metrics), for dashboards and tests.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Graceful shutdown: stop accepting, finish in-flight requests, flush, write the clean-
    /// shutdown marker. Connections still busy after `grace` are abandoned (their logs are still
    /// flushed; only the request they were in is lost, as with a client-side timeout).
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        self.shutdown_with_grace(Duration::from_secs(30)).await
    }

    /// [`Broker::shutdown`] with an explicit grace period for open connections.
    pub async fn shutdown_with_grace(self, grace: Duration) -> Result<(), BrokerError> {
        let Broker {
            shared,
            stop,
            accept_task,
            maintenance_task,
            groups_task,
            _lock,
            ..
        } = self;
        let _ = stop.send(true);
        let mut connections = accept_task.await.unwrap_or_default();
        let drained = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("connections still open after the grace period; closing them");
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        }
        maintenance_task.abort();
        let _ = maintenance_task.await;
        groups_task.stop().await;
        let data_dir = shared.config.data_dir.clone();
        let result = tokio::task::spawn_blocking(move || close_all(shared))
            .await
            .map_err(|e| BrokerError::Io {
                path: data_dir.clone(),
                cause: std::io::Error::other(e),
            })?;
        result?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_MARKER);
        fs::write(&marker, b"clean\n").map_err(io(&marker))?;
        fs::File::open(&marker)
            .and_then(|f| f.sync_all())
            .map_err(io(&marker))?;
        fs::File::open(&data_dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&data_dir))?;
        tracing::info!("broker stopped cleanly");
        drop(_lock);
        Ok(())
    }
}

/// Flushes and closes every log. Called once no connection or task holds the state.
fn close_all(shared: Arc<Shared>) -> Result<(), BrokerError> {
    match Arc::try_unwrap(shared) {
        Ok(shared) => {
            // The coordinator holds the offsets partition: release it so the log is closed.
            let Shared {
                cluster, groups, ..
            } = shared;
            drop(groups);
            cluster.close()?
        }
        Err(shared) => {
            // Someone (an embedding program) still holds the state: flush without closing.
            tracing::warn!(
                "broker state still referenced at shutdown; flushing logs without closing them"
            );
            shared.cluster.flush_all()?;
        }
    }
    Ok(())
}

fn load_or_create_cluster_id(data_dir: &Path) -> Result<String, BrokerError> {
    let path = data_dir.join("meta").join(CLUSTER_ID_FILE);
    match fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Ok(_) | Err(_) => {
            // Kafka cluster ids are 22-character URL-safe base64 of a UUID; any stable string works.
            let id = uuid::Uuid::new_v4().simple().to_string()[..22].to_owned();
            let dir = data_dir.join("meta");
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            crate::cluster::write_atomically(&path.with_extension("tmp"), &path, id.as_bytes())?;
            Ok(id)
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) -> JoinSet<()> {
    let mut connections = JoinSet::new();
    let mut stop = shared.shutting_down.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let open = shared.connections.load(Ordering::Relaxed);
                if open >= shared.config.max_connections {
                    shared.metrics.connections_rejected.inc();
                    tracing::warn!(%peer, open, limit = shared.config.max_connections, "connection limit reached; closing new connection");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                shared.connections.fetch_add(1, Ordering::Relaxed);
                shared.metrics.connections.inc();
                shared.metrics.connections_total.inc();
                let conn_shared = shared.clone();
                connections.spawn(async move {
                    crate::connection::serve(conn_shared.clone(), stream, peer).await;
                    conn_shared.connections.fetch_sub(1, Ordering::Relaxed);
                    conn_shared.metrics.connections.dec();
                });
            }
        }
    }
    tracing::info!("listener closed");
    connections
}
