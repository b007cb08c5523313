//! `veritas`: real-time card-fraud detection on Kafka, with an embedded Kafka-compatible broker.
//!
//! Every subcommand lives in its own module under `cmd/`; this file only parses the command
//! line, sets up logging and dispatches.

mod cmd;
mod dashboard;
mod pipeline;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: per-event allocations dominated the detector's
/// profile under glibc malloc (BENCHMARKS.md, "`veritas detect` end to end").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Real-time card-fraud detection on Kafka.
#[derive(Debug, Parser)]
#[command(name = "veritas", version, about, propagate_version = true)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `veritas_broker=debug`.
    #[arg(long, global = true, env = "VERITAS_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole system in one command: broker, producer, detector and live dashboard.
    Demo(cmd::demo::DemoArgs),
    /// Run the embedded Kafka-compatible broker.
    Broker(cmd::broker::BrokerArgs),
    /// Send generated (or replayed) card transactions to Kafka, with labelled fraud.
    Produce(cmd::produce::ProduceArgs),
    /// Score transactions from Kafka as a consumer-group member, writing explained decisions.
    Detect(cmd::detect::DetectArgs),
    /// Fit the fraud model on labelled history.
    Train(cmd::train::TrainArgs),
    /// Score a file of transactions offline with the same engine as the detector.
    Score(cmd::score::ScoreArgs),
    /// Precision, recall, AP and more from labelled events and their decisions.
    Eval(cmd::eval::EvalArgs),
    /// Generate labelled synthetic card transactions (training / evaluation history).
    Generate(cmd::generate::GenerateArgs),
    /// Convert a labelled dataset of another schema (e.g. Sparkov) to canonical events.
    Convert(cmd::convert::ConvertArgs),
    /// Measure broker throughput and end-to-end latency with librdkafka.
    Bench(cmd::bench::BenchArgs),
    /// List, create, describe, delete topics and alter their configs (any Kafka).
    Topics(cmd::topics::TopicsArgs),
    /// List and describe consumer groups (members, offsets, lag) and reset their offsets.
    Groups(cmd::groups::GroupsArgs),
    /// Print records of a topic, alone or as a consumer-group member.
    Consume(cmd::consume::ConsumeArgs),
    /// Send stdin lines as records (`-K:` splits `key:value`).
    ProduceRaw(cmd::produce_raw::ProduceRawArgs),
}

/// An error and its causes on one line, `outer: inner: …`. A cause whose text already ends
/// the line is left out: library errors carry their source in their own message
/// (`#[error("storage: {0}")]` beside `#[from]`), and the plain `{:#}` would print it twice.
pub(crate) fn error_report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Broker(args) => cmd::broker::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Convert(args) => cmd::convert::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::Score(args) => cmd::score::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Produce(args) => cmd::produce::run(args),
        Command::Detect(args) => cmd::detect::run(args),
        Command::Topics(args) => cmd::topics::run(args),
        Command::Groups(args) => cmd::groups::run(args),
        Command::Consume(args) => cmd::consume::run(args),
        Command::ProduceRaw(args) => cmd::produce_raw::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// A cause that its parent's message already tells is said once; the others all are.
    #[test]
    fn an_error_report_tells_each_cause_once() {
        // `DetectError::ModelParse` is `#[error("invalid model file: {0}")]` with `#[from]`.
        let parse = serde_json::from_str::<u8>("{").unwrap_err();
        let detail = parse.to_string();
        let e = anyhow::Error::new(veritas_detect::DetectError::from(parse))
            .context("loading model.json");
        assert_eq!(
            super::error_report(&e),
            format!("loading model.json: invalid model file: {detail}")
        );
        assert_eq!(
            format!("{e:#}"),
            format!("loading model.json: invalid model file: {detail}: {detail}")
        );
        let e = anyhow::anyhow!("disk full").context("writing decisions");
        assert_eq!(super::error_report(&e), "writing decisions: disk full");
    }

    /// Every flag of every subcommand can also be set from the environment, under a
    /// `VERITAS_` name of its own within its command.
    #[test]
    fn every_flag_has_a_veritas_environment_variable() {
        fn check(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let mut seen = std::collections::HashMap::new();
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_positional() || id == "help" || id == "version" {
                    continue;
                }
                match arg.get_env().and_then(|e| e.to_str()) {
                    Some(env) if env.starts_with("VERITAS_") => {
                        if let Some(other) = seen.insert(env.to_owned(), id.to_owned()) {
                            missing.push(format!("{path}: --{id} and --{other} share {env}"));
                        }
                    }
                    _ => missing.push(format!("{path}: --{id}")),
                }
            }
            for sub in cmd.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        check(&cmd, "veritas", &mut missing);
        assert!(
            missing.is_empty(),
            "flags without VERITAS_* env: {missing:#?}"
        );
    }
}
