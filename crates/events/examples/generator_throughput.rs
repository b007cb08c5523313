//! Generator throughput without criterion, for quick checks on a busy machine (compare
//! with the process's CPU time, e.g. under `perf stat` or `/usr/bin/time`).
//!
//! `cargo run --release -p veritas-events --example generator_throughput -- [events] [customers] [json]`

use std::hint::black_box;
use std::time::Instant;

use veritas_events::{encode_labelled_into, Generator, GeneratorConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5_000_000);
    let customers: u32 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let json = args.next().is_some_and(|s| s == "json");
    let built = Instant::now();
    let generator = Generator::new(GeneratorConfig {
        seed: 1,
        customers,
        days: None,
        ..GeneratorConfig::default()
    })?;
    let build = built.elapsed();
    let started = Instant::now();
    let mut buf = Vec::with_capacity(512);
    let mut bytes = 0usize;
    for event in generator.take(events) {
        if json {
            buf.clear();
            encode_labelled_into(&event, &mut buf);
            bytes += buf.len();
        }
        black_box(event);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "world {:.1} ms; {events} events in {secs:.2} s = {:.0} events/s{}",
        build.as_secs_f64() * 1e3,
        events as f64 / secs,
        if json {
            format!(
                " (with JSON, {:.0} bytes/event)",
                bytes as f64 / events as f64
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
