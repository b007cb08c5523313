//! Evaluation: metrics from labels and scores/decisions (pure functions) and a report.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::score::Verdict;

/// One scored, labelled event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// Ground truth.
    pub is_fraud: bool,
    /// Fraud scenario, if labelled.
    pub scenario: Option<String>,
    /// Score in [0, 1].
    pub score: f64,
    /// Verdict.
    pub decision: Verdict,
    /// Processing latency (µs), if measured.
    pub latency_us: Option<u64>,
}

/// Indices sorted by descending score (ties keep index order), and group ends of equal scores.
fn ranked(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx
}

/// Walk distinct thresholds from high to low, yielding (threshold, tp, fp) after each group.
fn threshold_curve(labels: &[bool], scores: &[f64]) -> Vec<(f64, usize, usize)> {
    let idx = ranked(scores);
    let mut out = Vec::new();
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]].total_cmp(&s).is_eq() {
            if labels[idx[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        out.push((s, tp, fp));
    }
    out
}

/// Average precision: Σ (Rₖ − Rₖ₋₁)·Pₖ over distinct score thresholds, high to low.
/// `None` when there is no positive or the slices differ in length.
pub fn average_precision(labels: &[bool], scores: &[f64]) -> Option<f64> {
    if labels.len() != scores.len() {
        return None;
    }
    let pos = labels.iter().filter(|&&y| y).count();
    if pos == 0 {
        return None;
    }
    let mut ap = 0.0;
    let mut prev_recall = 0.0;
    for (_, tp, fp) in threshold_curve(labels, scores) {
        let recall = tp as f64 / pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    Some(ap)
}

/// ROC AUC via the rank-sum (Mann–Whitney) statistic with averaged ranks for ties.
/// `None` unless both classes are present.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Option<f64> {
    if labels.len() != scores.len() {
        return None;
    }
    let pos = labels.iter().filter(|&&y| y).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j < idx.len() && scores[idx[j]].total_cmp(&scores[idx[i]]).is_eq() {
            j += 1;
        }
        // Ranks i+1 ..= j share the average rank.
        let avg = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg * idx[i..j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j;
    }
    let p = pos as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * neg as f64))
}

/// The best operating point with precision ≥ `min_precision`: `(recall, threshold)`,
/// flagging scores ≥ threshold. `None` when there is no positive or no threshold reaches
/// the precision.
pub fn recall_at_precision(
    labels: &[bool],
    scores: &[f64],
    min_precision: f64,
) -> Option<(f64, f64)> {
    if labels.len() != scores.len() {
        return None;
    }
    let pos = labels.iter().filter(|&&y| y).count();
    if pos == 0 {
        return None;
    }
    let mut best: Option<(f64, f64)> = None;
    for (s, tp, fp) in threshold_curve(labels, scores) {
        let precision = tp as f64 / (tp + fp) as f64;
        let recall = tp as f64 / pos as f64;
        if precision >= min_precision && best.is_none_or(|b| recall > b.0) {
            best = Some((recall, s));
        }
    }
    best
}

/// Nearest-rank percentile (`q` in [0, 100]) of unsorted values.
pub fn percentile(values: &[u64], q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len()) - 1).copied()
}

/// Confusion matrix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Fraud flagged.
    pub tp: u64,
    /// Legitimate flagged.
    pub fp: u64,
    /// Legitimate passed.
    pub tn: u64,
    /// Fraud passed.
    pub fn_: u64,
}

impl Confusion {
    /// Precision (`None` when nothing was flagged).
    pub fn precision(&self) -> Option<f64> {
        let d = self.tp + self.fp;
        (d > 0).then(|| self.tp as f64 / d as f64)
    }

    /// Recall (`None` without fraud).
    pub fn recall(&self) -> Option<f64> {
        let d = self.tp + self.fn_;
        (d > 0).then(|| self.tp as f64 / d as f64)
    }

    /// F1 (`None` when precision or recall is undefined, 0 when both are 0).
    pub fn f1(&self) -> Option<f64> {
        let (p, r) = (self.precision()?, self.recall()?);
        Some(if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        })
    }
}

/// Recall of one fraud scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRecall {
    /// Scenario name.
    pub scenario: String,
    /// Fraudulent events of this scenario.
    pub frauds: u64,
    /// Share DECLINEd.
    pub recall_decline: f64,
    /// Share REVIEWed or DECLINEd.
    pub recall_flagged: f64,
    /// Share at or above the precision-0.9 operating threshold (if one exists).
    pub recall_at_p90_threshold: Option<f64>,
}

/// The evaluation report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Labelled events.
    pub events: u64,
    /// Events with a decision.
    pub decided: u64,
    /// `decided / events`.
    pub coverage: f64,
    /// Fraudulent events among the decided.
    pub frauds: u64,
    /// Count per verdict.
    pub verdicts: BTreeMap<String, u64>,
    /// Confusion at the DECLINE threshold.
    pub confusion_decline: Confusion,
    /// Precision at DECLINE.
    pub precision: Option<f64>,
    /// Recall at DECLINE.
    pub recall: Option<f64>,
    /// F1 at DECLINE.
    pub f1: Option<f64>,
    /// Confusion counting REVIEW or DECLINE as flagged.
    pub confusion_flagged: Confusion,
    /// Average precision of the scores.
    pub average_precision: Option<f64>,
    /// ROC AUC of the scores.
    pub roc_auc: Option<f64>,
    /// Best recall at precision ≥ 0.9.
    pub recall_at_p90: Option<f64>,
    /// Score threshold of that operating point.
    pub threshold_at_p90: Option<f64>,
    /// Per-scenario recall.
    pub scenarios: Vec<ScenarioRecall>,
    /// Median latency (µs).
    pub latency_p50_us: Option<u64>,
    /// 99th percentile latency (µs).
    pub latency_p99_us: Option<u64>,
}

/// Evaluate `scored` events; `events` is the number of labelled events (for coverage).
pub fn evaluate(scored: &[Scored], events: u64) -> EvalReport {
    let labels: Vec<bool> = scored.iter().map(|s| s.is_fraud).collect();
    let scores: Vec<f64> = scored.iter().map(|s| s.score).collect();
    let mut cd = Confusion::default();
    let mut cf = Confusion::default();
    let mut verdicts = BTreeMap::new();
    for s in scored {
        *verdicts.entry(s.decision.as_str().to_owned()).or_insert(0) += 1;
        let declined = s.decision == Verdict::Decline;
        let flagged = s.decision != Verdict::Approve;
        for (c, hit) in [(&mut cd, declined), (&mut cf, flagged)] {
            match (s.is_fraud, hit) {
                (true, true) => c.tp += 1,
                (true, false) => c.fn_ += 1,
                (false, true) => c.fp += 1,
                (false, false) => c.tn += 1,
            }
        }
    }
    let p90 = recall_at_precision(&labels, &scores, 0.9);
    let mut per: BTreeMap<&str, (u64, u64, u64, u64)> = BTreeMap::new();
    for s in scored.iter().filter(|s| s.is_fraud) {
        let name = s.scenario.as_deref().unwrap_or("(unlabelled)");
        let e = per.entry(name).or_default();
        e.0 += 1;
        e.1 += u64::from(s.decision == Verdict::Decline);
        e.2 += u64::from(s.decision != Verdict::Approve);
        e.3 += u64::from(p90.is_some_and(|(_, t)| s.score >= t));
    }
    let scenarios = per
        .into_iter()
        .map(|(name, (n, d, f, p))| ScenarioRecall {
            scenario: name.to_owned(),
            frauds: n,
            recall_decline: d as f64 / n as f64,
            recall_flagged: f as f64 / n as f64,
            recall_at_p90_threshold: p90.map(|_| p as f64 / n as f64),
        })
        .collect();
    let latencies: Vec<u64> = scored.iter().filter_map(|s| s.latency_us).collect();
    let decided = scored.len() as u64;
    EvalReport {
        events,
        decided,
        coverage: if events > 0 {
            decided as f64 / events as f64
        } else {
            0.0
        },
        frauds: labels.iter().filter(|&&y| y).count() as u64,
        verdicts,
        confusion_decline: cd,
        precision: cd.precision(),
        recall: cd.recall(),
        f1: cd.f1(),
        confusion_flagged: cf,
        average_precision: average_precision(&labels, &scores),
        roc_auc: roc_auc(&labels, &scores),
        recall_at_p90: p90.map(|p| p.0),
        threshold_at_p90: p90.map(|p| p.1),
        scenarios,
        latency_p50_us: percentile(&latencies, 50.0),
        latency_p99_us: percentile(&latencies, 99.0),
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.4}"))
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Evaluation")?;
        writeln!(f, "  events            {:>10}", self.events)?;
        writeln!(
            f,
            "  decided           {:>10}   coverage {:.4}",
            self.decided, self.coverage
        )?;
        writeln!(f, "  frauds            {:>10}", self.frauds)?;
        for (v, n) in &self.verdicts {
            writeln!(f, "  {v:<17} {n:>10}")?;
        }
        writeln!(f)?;
        writeln!(f, "  average precision {:>10}", opt(self.average_precision))?;
        writeln!(f, "  ROC AUC           {:>10}", opt(self.roc_auc))?;
        writeln!(
            f,
            "  recall @ P>=0.90  {:>10}   (score threshold {})",
            opt(self.recall_at_p90),
            opt(self.threshold_at_p90)
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "  {:<20} {:>10} {:>10} {:>10}",
            "", "precision", "recall", "F1"
        )?;
        for (name, c) in [
            ("at DECLINE", &self.confusion_decline),
            ("at REVIEW+DECLINE", &self.confusion_flagged),
        ] {
            writeln!(
                f,
                "  {:<20} {:>10} {:>10} {:>10}",
                name,
                opt(c.precision()),
                opt(c.recall()),
                opt(c.f1())
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  confusion at DECLINE   predicted fraud   predicted legit"
        )?;
        let c = &self.confusion_decline;
        writeln!(f, "    actual fraud        {:>15}   {:>15}", c.tp, c.fn_)?;
        writeln!(f, "    actual legit        {:>15}   {:>15}", c.fp, c.tn)?;
        if !self.scenarios.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "  {:<26} {:>8} {:>9} {:>9} {:>9}",
                "scenario", "frauds", "declined", "flagged", "@P>=0.9"
            )?;
            for s in &self.scenarios {
                writeln!(
                    f,
                    "  {:<26} {:>8} {:>9.4} {:>9.4} {:>9}",
                    s.scenario,
                    s.frauds,
                    s.recall_decline,
                    s.recall_flagged,
                    opt(s.recall_at_p90_threshold)
                )?;
            }
        }
        writeln!(f)?;
        let lat = |v: Option<u64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v} µs"));
        writeln!(
            f,
            "  latency p50 {}   p99 {}",
            lat(self.latency_p50_us),
            lat(self.latency_p99_us)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_precision_hand_computed() {
        // Ranked: 0.9(+) 0.8(-) 0.7(+) 0.6(-) ; P = 2.
        // AP = 0.5 * 1/1 + 0.5 * 2/3 = 0.8333…
        let labels = [true, false, true, false];
        let scores = [0.9, 0.8, 0.7, 0.6];
        let ap = average_precision(&labels, &scores).unwrap();
        assert!((ap - (0.5 + 0.5 * 2.0 / 3.0)).abs() < 1e-12, "{ap}");
        // Perfect ranking.
        assert_eq!(average_precision(&[true, false], &[0.9, 0.1]), Some(1.0));
        // Ties: all equal scores -> precision of the whole set = 0.5.
        let ap = average_precision(&[true, false, true, false], &[0.5; 4]).unwrap();
        assert!((ap - 0.5).abs() < 1e-12);
        assert_eq!(average_precision(&[false], &[0.3]), None);
    }

    #[test]
    fn roc_auc_hand_computed() {
        // Pairs (pos, neg): (0.9,0.8)>,(0.9,0.6)>,(0.7,0.8)<,(0.7,0.6)> -> 3/4.
        let labels = [true, false, true, false];
        let scores = [0.9, 0.8, 0.7, 0.6];
        assert!((roc_auc(&labels, &scores).unwrap() - 0.75).abs() < 1e-12);
        // Ties count half.
        assert!((roc_auc(&[true, false], &[0.5, 0.5]).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(roc_auc(&[true, true], &[0.1, 0.2]), None);
        // Inverted ranking.
        assert_eq!(roc_auc(&[false, true], &[0.9, 0.1]), Some(0.0));
    }

    #[test]
    fn recall_at_precision_hand_computed() {
        let labels = [true, true, false, true, false];
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5];
        // Thresholds: 0.9 -> P1 R1/3; 0.8 -> P1 R2/3; 0.7 -> P2/3; 0.6 -> P3/4 R1; 0.5 -> P3/5.
        let (r, t) = recall_at_precision(&labels, &scores, 0.9).unwrap();
        assert!((r - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(t, 0.8);
        let (r, t) = recall_at_precision(&labels, &scores, 0.75).unwrap();
        assert_eq!((r, t), (1.0, 0.6));
        assert_eq!(recall_at_precision(&[false, true], &[0.9, 0.1], 0.9), None);
    }

    #[test]
    fn percentiles_and_confusion() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[], 50.0), None);
        let c = Confusion {
            tp: 8,
            fp: 2,
            tn: 85,
            fn_: 5,
        };
        assert_eq!(c.precision(), Some(0.8));
        assert!((c.recall().unwrap() - 8.0 / 13.0).abs() < 1e-12);
        let f1 = 2.0 * 0.8 * (8.0 / 13.0) / (0.8 + 8.0 / 13.0);
        assert!((c.f1().unwrap() - f1).abs() < 1e-12);
    }

    #[test]
    fn report_counts_and_renders() {
        let mk = |fraud: bool, sc: Option<&str>, score: f64, d: Verdict, lat: u64| Scored {
            is_fraud: fraud,
            scenario: sc.map(str::to_owned),
            score,
            decision: d,
            latency_us: Some(lat),
        };
        let scored = vec![
            mk(true, Some("card_testing"), 0.95, Verdict::Decline, 10),
            mk(true, Some("card_testing"), 0.6, Verdict::Review, 20),
            mk(true, Some("ato"), 0.2, Verdict::Approve, 30),
            mk(false, None, 0.92, Verdict::Decline, 40),
            mk(false, None, 0.1, Verdict::Approve, 50),
        ];
        let r = evaluate(&scored, 10);
        assert_eq!(r.coverage, 0.5);
        assert_eq!(r.frauds, 3);
        assert_eq!(
            r.confusion_decline,
            Confusion {
                tp: 1,
                fp: 1,
                tn: 1,
                fn_: 2
            }
        );
        assert_eq!(r.confusion_flagged.tp, 2);
        assert_eq!(r.precision, Some(0.5));
        assert_eq!(r.scenarios.len(), 2);
        let ct = r
            .scenarios
            .iter()
            .find(|s| s.scenario == "card_testing")
            .unwrap();
        assert_eq!((ct.recall_decline, ct.recall_flagged), (0.5, 1.0));
        assert_eq!(r.latency_p50_us, Some(30));
        let text = r.to_string();
        assert!(text.contains("average precision"));
        assert!(text.contains("card_testing"));
        let json = serde_json::to_string(&r).unwrap();
        let back: EvalReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
