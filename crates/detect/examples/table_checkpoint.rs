//! Size and cost of a merchant table checkpoint (`SharedTable::checkpoint` / `restore`)
//! after reading generator traffic over N partitions, as `veritas detect` takes one.
//!
//! `cargo run --release -p veritas-detect --example table_checkpoint -- [customers] [days] [partitions]`

use std::time::Instant;

use veritas_detect::shared::SharedTable;
use veritas_detect::{partition_of, DetectorConfig};
use veritas_events::{Generator, GeneratorConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: u32| -> Result<u32, Box<dyn std::error::Error>> {
        Ok(std::env::args()
            .nth(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (customers, days, partitions) = (arg(1, 10_000)?, arg(2, 90)?, arg(3, 6)?);
    let events: Vec<_> = Generator::new(GeneratorConfig {
        seed: 1,
        customers,
        days: Some(days),
        ..GeneratorConfig::default()
    })?
    .collect();
    let engine = DetectorConfig::default().engine;
    let mut table = SharedTable::new(&engine, partitions, engine.shared_interval_ms());
    let mut offsets = vec![0i64; partitions as usize];
    let started = Instant::now();
    for e in &events {
        let p = partition_of(&e.tx.card_number, partitions);
        table.offer(p, offsets[p as usize], &e.tx);
        offsets[p as usize] += 1;
    }
    let read = started.elapsed();
    let started = Instant::now();
    let bytes = table.checkpoint();
    let encode = started.elapsed();
    let started = Instant::now();
    let restored = SharedTable::restore(&engine, engine.shared_interval_ms(), &bytes)?;
    let decode = started.elapsed();
    assert_eq!(restored.checkpoint(), bytes, "restore is not exact");
    println!(
        "{} events ({customers} cardholders, {days} days, {partitions} partitions) read in {:.2} s; \
         checkpoint {:.1} MiB, {} pending events; encode {:.0} ms, restore {:.0} ms",
        events.len(),
        read.as_secs_f64(),
        bytes.len() as f64 / (1 << 20) as f64,
        restored.pending(),
        encode.as_secs_f64() * 1e3,
        decode.as_secs_f64() * 1e3,
    );
    Ok(())
}
