//! Torn writes on generated logs: every damaged copy recovers to a valid prefix of the
//! original, never serving a corrupt batch (the full description is in `src/torn.rs`).

#[test]
fn damaged_copies_recover_to_a_valid_prefix() {
    let report = veritas_reliability::torn::run(400, 0x7047).expect("harness runs");
    eprintln!(
        "{} cases {:?}: {} of {} batches served, {} intact before the damage",
        report.cases,
        report.by_kind,
        report.batches_served,
        report.batches_original,
        report.batches_intact
    );
    assert!(report.ok(), "{report:#?}");
    // Every damage kind was exercised, and damage really cost batches somewhere.
    assert_eq!(report.by_kind.len(), 5, "{:?}", report.by_kind);
    assert!(report.batches_served < report.batches_original);
}
