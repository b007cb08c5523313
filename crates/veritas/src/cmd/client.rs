//! What every Kafka-client subcommand shares: where the cluster is, how to print results.
//!
//! These subcommands speak plain Kafka through librdkafka, so they work against any Kafka
//! cluster, not only the embedded broker.

use clap::{Args, ValueEnum};
use comfy_table::{presets, Table};
use rdkafka::config::ClientConfig;

/// Connection and output flags shared by the client subcommands.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Kafka bootstrap servers (`host:port[,host:port...]`).
    #[arg(
        long,
        short = 'b',
        env = "VERITAS_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap_servers: String,
    /// Output format.
    #[arg(long, short = 'o', env = "VERITAS_OUTPUT", value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// One JSON document for programs.
    Json,
}

impl ClientArgs {
    /// A librdkafka configuration pointing at the cluster.
    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("socket.timeout.ms", "10000")
            .set("broker.address.family", "v4");
        c
    }
}

/// An rpk-style table: upper-case headers, no borders.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: ToString,
{
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.into_iter().map(|h| h.to_string().to_uppercase()));
    t
}

/// Prints `value` as pretty JSON.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    emit(&serde_json::to_string_pretty(value)?)
}

/// Writes one line to stdout. A closed pipe (`veritas ... | head`) ends output quietly instead
/// of panicking the way `println!` does.
pub fn emit(line: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{line}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
}

/// A librdkafka client context that reports errors through `tracing`, treating end-of-partition
/// notices as the routine events they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct QuietContext;

impl rdkafka::ClientContext for QuietContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        match error {
            rdkafka::error::KafkaError::PartitionEOF(_)
            | rdkafka::error::KafkaError::Global(rdkafka::error::RDKafkaErrorCode::PartitionEOF) => {
                tracing::debug!(%reason, "end of partition")
            }
            e => tracing::warn!(error = %e, %reason, "kafka client error"),
        }
    }
}

impl rdkafka::consumer::ConsumerContext for QuietContext {}

/// A runtime for the admin client's futures.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
