//! Print a sample of generated events and the scenario counts.
//!
//! `cargo run --release -p veritas-events --example sample -- [customers] [days] [seed]`

use veritas_events::{encode_labelled_into, Generator, GeneratorConfig, Scenario};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let customers = args.next().map(|s| s.parse()).transpose()?.unwrap_or(200);
    let days = args.next().map(|s| s.parse()).transpose()?.unwrap_or(30);
    let seed = args.next().map(|s| s.parse()).transpose()?.unwrap_or(42);
    let config = GeneratorConfig {
        seed,
        customers,
        days: Some(days),
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(config)?;
    let mut line = Vec::new();
    let mut shown_legit = 0;
    let mut shown: Vec<&str> = Vec::new();
    for event in generator.by_ref() {
        let show = match event.label.scenario.as_deref() {
            None => {
                shown_legit += 1;
                shown_legit <= 6
            }
            Some(s) if !shown.contains(&s) => {
                shown.push(
                    Scenario::ALL
                        .iter()
                        .find(|x| x.as_str() == s)
                        .map_or("?", |x| x.as_str()),
                );
                true
            }
            Some(_) => false,
        };
        if show {
            line.clear();
            encode_labelled_into(&event, &mut line);
            println!("{}", String::from_utf8_lossy(&line));
        }
    }
    let stats = generator.stats();
    eprintln!(
        "events {} frauds {} rate {:.4}",
        stats.events,
        stats.frauds,
        stats.fraud_rate()
    );
    for s in Scenario::ALL {
        eprintln!("  {s}: {}", stats.frauds_by(s));
    }
    Ok(())
}
