//! A histogram-based gradient-boosted decision tree learner (logistic loss).
//!
//! * Features are quantile-binned once (≤ 254 value bins + 1 missing bin per feature).
//! * Trees grow depth-first to `max_depth`; each split is chosen from per-bin gradient
//!   histograms (the larger child's histogram is the parent's minus the smaller one's).
//! * Missing values go down a learned default branch (both directions are tried).
//! * Newton leaf values with L2 regularisation `lambda`, split penalty `gamma`,
//!   `min_child_weight` on the hessian, shrinkage `learning_rate`.
//! * Per-tree row subsampling and feature subsampling, seeded and deterministic.
//! * Class imbalance: positive rows are weighted by `scale_pos_weight` (default
//!   `sqrt(neg/pos)`); the base margin
//!   is then shifted by `-ln(scale_pos_weight)` so outputs stay calibrated probabilities
//!   (the standard prior correction for class-weighted logistic models).
//! * Early stopping on the (unweighted, prior-corrected) log-loss of a validation set.

use serde::{Deserialize, Serialize};

use crate::error::DetectError;

/// Training hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GbdtParams {
    /// Maximum number of trees.
    pub n_trees: usize,
    /// Shrinkage applied to every leaf value.
    pub learning_rate: f64,
    /// Maximum tree depth (a depth-d tree has at most 2^d leaves).
    pub max_depth: usize,
    /// Minimum hessian sum in a child.
    pub min_child_weight: f64,
    /// L2 regularisation on leaf values.
    pub lambda: f64,
    /// Minimum loss reduction to split.
    pub gamma: f64,
    /// Fraction of rows sampled per tree.
    pub subsample: f64,
    /// Fraction of features sampled per tree.
    pub colsample: f64,
    /// Bins per feature, missing bin included (2..=255).
    pub max_bins: usize,
    /// Weight of positive rows; `None` = `sqrt(negatives / positives)` clamped to [1, 100]
    /// (full inverse-frequency weighting over-weights the rare class and cost average
    /// precision on the synthetic benchmark).
    pub scale_pos_weight: Option<f64>,
    /// Stop after this many trees without validation improvement (0 = never).
    pub early_stopping_rounds: usize,
    /// Seed of the subsampling generator.
    pub seed: u64,
}

impl Default for GbdtParams {
    fn default() -> Self {
        Self {
            n_trees: 400,
            learning_rate: 0.08,
            max_depth: 6,
            min_child_weight: 1.0,
            lambda: 1.0,
            gamma: 0.0,
            subsample: 0.8,
            colsample: 0.8,
            max_bins: 255,
            scale_pos_weight: None,
            early_stopping_rounds: 30,
            seed: 0x5eed,
        }
    }
}

/// A dense row-major matrix of features with binary labels. `NaN` = missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    n_features: usize,
    values: Vec<f32>,
    labels: Vec<bool>,
}

impl Dataset {
    /// An empty dataset with `n_features` columns.
    pub fn new(n_features: usize) -> Self {
        Self {
            n_features,
            values: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// Append a row; `row.len()` must equal the column count.
    pub fn push(&mut self, row: &[f32], label: bool) -> Result<(), DetectError> {
        if row.len() != self.n_features {
            return Err(DetectError::Training(format!(
                "row has {} values, dataset has {} columns",
                row.len(),
                self.n_features
            )));
        }
        self.values.extend_from_slice(row);
        self.labels.push(label);
        Ok(())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of columns.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Row `i`.
    ///
    /// # Panics
    ///
    /// If `i >= self.len()` (rows are addressed by the caller's own loop bounds).
    pub fn row(&self, i: usize) -> &[f32] {
        let start = i * self.n_features;
        &self.values[start..start + self.n_features]
    }

    /// Label of row `i`.
    ///
    /// # Panics
    ///
    /// If `i >= self.len()`.
    pub fn label(&self, i: usize) -> bool {
        self.labels[i]
    }

    /// All labels.
    pub fn labels(&self) -> &[bool] {
        &self.labels
    }

    /// The rows `range` as a new dataset.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Dataset {
        let r = range.start.min(self.len())..range.end.min(self.len());
        Dataset {
            n_features: self.n_features,
            values: self.values[r.start * self.n_features..r.end * self.n_features].to_vec(),
            labels: self.labels[r].to_vec(),
        }
    }
}

/// One tree node. Leaves have `feature == None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    /// Split feature (column index), `None` for a leaf.
    pub feature: Option<u16>,
    /// Go left when `value <= threshold`.
    pub threshold: f32,
    /// Direction of missing values.
    pub default_left: bool,
    /// Left child index (greater than this node's index).
    pub left: u32,
    /// Right child index (greater than this node's index).
    pub right: u32,
    /// Leaf value, or for an internal node the value it would have as a leaf (used for
    /// per-feature attribution). Already multiplied by the learning rate.
    pub value: f32,
}

/// A regression tree over the margin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tree {
    /// Nodes; index 0 is the root, children always follow their parent.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The leaf value reached by `x`. Missing values follow the default branch.
    #[inline]
    pub fn predict(&self, x: &[f32]) -> f32 {
        let mut i = 0usize;
        loop {
            let Some(n) = self.nodes.get(i) else {
                return 0.0;
            };
            let Some(f) = n.feature else {
                return n.value;
            };
            let v = x.get(usize::from(f)).copied().unwrap_or(f32::NAN);
            let left = if v.is_nan() {
                n.default_left
            } else {
                v <= n.threshold
            };
            i = if left { n.left } else { n.right } as usize;
        }
    }

    /// Like [`Tree::predict`], adding each split's change of node value to
    /// `contrib[feature]` (Saabas path attribution). Returns the leaf value; the leaf
    /// value equals the root value plus the added contributions.
    #[inline]
    pub fn predict_contrib(&self, x: &[f32], contrib: &mut [f32]) -> f32 {
        let mut i = 0usize;
        loop {
            let Some(n) = self.nodes.get(i) else {
                return 0.0;
            };
            let Some(f) = n.feature else {
                return n.value;
            };
            let fi = usize::from(f);
            let v = x.get(fi).copied().unwrap_or(f32::NAN);
            let left = if v.is_nan() {
                n.default_left
            } else {
                v <= n.threshold
            };
            i = if left { n.left } else { n.right } as usize;
            if let (Some(child), Some(c)) = (self.nodes.get(i), contrib.get_mut(fi)) {
                *c += child.value - n.value;
            }
        }
    }

    /// Check structure: children after parents and in range, features in range,
    /// finite values.
    pub fn validate(&self, n_features: usize) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("empty tree".into());
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.value.is_finite() {
                return Err(format!("node {i}: non-finite value"));
            }
            if let Some(f) = n.feature {
                if usize::from(f) >= n_features {
                    return Err(format!("node {i}: feature {f} out of range"));
                }
                if !n.threshold.is_finite() {
                    return Err(format!("node {i}: non-finite threshold"));
                }
                for c in [n.left, n.right] {
                    let c = c as usize;
                    if c <= i || c >= self.nodes.len() {
                        return Err(format!("node {i}: child {c} out of order or range"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A trained ensemble: margin = `base_margin` + Σ tree outputs; probability = sigmoid(margin).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ensemble {
    /// Margin before any tree.
    pub base_margin: f64,
    /// The trees.
    pub trees: Vec<Tree>,
    /// Total split gain per feature (importance).
    pub gain: Vec<f64>,
}

impl Ensemble {
    /// The margin (log-odds) of `x`.
    pub fn margin(&self, x: &[f32]) -> f64 {
        self.base_margin
            + self
                .trees
                .iter()
                .map(|t| f64::from(t.predict(x)))
                .sum::<f64>()
    }
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// SplitMix64: a small deterministic generator for subsampling.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Per-feature cut points: value bin = 1 + #(cuts < v); bin 0 = missing.
#[derive(Debug, Clone)]
struct Binner {
    cuts: Vec<Vec<f32>>,
    /// Offset of each feature's bins in a flat histogram.
    offsets: Vec<usize>,
    total_bins: usize,
}

impl Binner {
    fn fit(ds: &Dataset, max_bins: usize) -> Self {
        let max_cuts = max_bins.clamp(2, 255) - 2;
        let n = ds.len();
        let stride = (n / 200_000).max(1);
        let mut cuts = Vec::with_capacity(ds.n_features);
        let mut col = Vec::with_capacity(n / stride + 1);
        for f in 0..ds.n_features {
            col.clear();
            col.extend(
                (0..n)
                    .step_by(stride)
                    .map(|i| ds.values[i * ds.n_features + f])
                    .filter(|v| !v.is_nan()),
            );
            col.sort_unstable_by(f32::total_cmp);
            col.dedup();
            let mut c: Vec<f32> = if col.len() <= max_cuts + 1 {
                col.windows(2)
                    .map(|w| ((f64::from(w[0]) + f64::from(w[1])) / 2.0) as f32)
                    .collect()
            } else {
                // Quantiles of the distinct values would ignore frequency; use the
                // sampled column with duplicates for frequency-aware quantiles.
                let mut all: Vec<f32> = (0..n)
                    .step_by(stride)
                    .map(|i| ds.values[i * ds.n_features + f])
                    .filter(|v| !v.is_nan())
                    .collect();
                all.sort_unstable_by(f32::total_cmp);
                let m = all.len();
                (1..=max_cuts)
                    .filter_map(|k| all.get(k * m / (max_cuts + 1)).copied())
                    .collect()
            };
            c.dedup();
            // A cut at or above the maximum separates nothing.
            if let Some(&max) = col.last() {
                c.retain(|&x| x < max);
            }
            cuts.push(c);
        }
        let mut offsets = Vec::with_capacity(cuts.len());
        let mut total = 0;
        for c in &cuts {
            offsets.push(total);
            total += c.len() + 2;
        }
        Self {
            cuts,
            offsets,
            total_bins: total,
        }
    }

    fn n_bins(&self, f: usize) -> usize {
        self.cuts[f].len() + 2
    }

    fn bin(&self, f: usize, v: f32) -> u8 {
        if v.is_nan() {
            0
        } else {
            let b = 1 + self.cuts[f].partition_point(|&c| c < v);
            debug_assert!(b <= 254);
            b as u8
        }
    }

    /// Raw threshold for "bin <= b" (b ≥ 1).
    fn threshold(&self, f: usize, b: usize) -> f32 {
        self.cuts[f][b - 1]
    }
}

#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    bin: usize,
    default_left: bool,
    gain: f64,
    gl: f64,
    hl: f64,
}

struct Grower<'a> {
    binner: &'a Binner,
    bins: &'a [u8],
    n_features: usize,
    grad: &'a [f32],
    hess: &'a [f32],
    params: &'a GbdtParams,
    features: Vec<usize>,
    nodes: Vec<Node>,
    gain: &'a mut [f64],
}

impl Grower<'_> {
    fn leaf_value(&self, g: f64, h: f64) -> f32 {
        (-g / (h + self.params.lambda) * self.params.learning_rate) as f32
    }

    fn histogram(&self, rows: &[u32]) -> Vec<[f64; 2]> {
        let mut hist = vec![[0.0f64; 2]; self.binner.total_bins];
        for &r in rows {
            let r = r as usize;
            let base = r * self.n_features;
            let (g, h) = (f64::from(self.grad[r]), f64::from(self.hess[r]));
            let row = &self.bins[base..base + self.n_features];
            for &f in &self.features {
                let slot = &mut hist[self.binner.offsets[f] + usize::from(row[f])];
                slot[0] += g;
                slot[1] += h;
            }
        }
        hist
    }

    fn best_split(&self, hist: &[[f64; 2]], g: f64, h: f64) -> Option<Split> {
        let lambda = self.params.lambda;
        let mcw = self.params.min_child_weight;
        let parent = g * g / (h + lambda);
        let mut best: Option<Split> = None;
        for &f in &self.features {
            let off = self.binner.offsets[f];
            let nb = self.binner.n_bins(f);
            let hf = &hist[off..off + nb];
            let (gm, hm) = (hf[0][0], hf[0][1]);
            let (mut gl, mut hl) = (0.0, 0.0);
            // Candidate split after value bin b: left = bins 1..=b.
            for (b, slot) in hf.iter().enumerate().take(nb - 1).skip(1) {
                gl += slot[0];
                hl += slot[1];
                for default_left in [false, true] {
                    let (gl2, hl2) = if default_left {
                        (gl + gm, hl + hm)
                    } else {
                        (gl, hl)
                    };
                    let (gr2, hr2) = (g - gl2, h - hl2);
                    if hl2 < mcw || hr2 < mcw {
                        continue;
                    }
                    let gain = 0.5
                        * (gl2 * gl2 / (hl2 + lambda) + gr2 * gr2 / (hr2 + lambda) - parent)
                        - self.params.gamma;
                    if gain > 1e-9 && best.is_none_or(|s| gain > s.gain) {
                        best = Some(Split {
                            feature: f,
                            bin: b,
                            default_left,
                            gain,
                            gl: gl2,
                            hl: hl2,
                        });
                    }
                }
            }
        }
        best
    }

    /// Grow the subtree for `rows` at `depth`; returns its node index.
    fn grow(&mut self, rows: &mut [u32], hist: Vec<[f64; 2]>, g: f64, h: f64, depth: usize) -> u32 {
        let id = self.nodes.len() as u32;
        let value = self.leaf_value(g, h);
        self.nodes.push(Node {
            feature: None,
            threshold: 0.0,
            default_left: false,
            left: 0,
            right: 0,
            value,
        });
        if depth >= self.params.max_depth || h < 2.0 * self.params.min_child_weight {
            return id;
        }
        let Some(split) = self.best_split(&hist, g, h) else {
            return id;
        };
        // Partition rows: left first.
        let f = split.feature;
        let mut lo = 0usize;
        for i in 0..rows.len() {
            let r = rows[i] as usize;
            let b = usize::from(self.bins[r * self.n_features + f]);
            let left = if b == 0 {
                split.default_left
            } else {
                b <= split.bin
            };
            if left {
                rows.swap(lo, i);
                lo += 1;
            }
        }
        let (left_rows, right_rows) = rows.split_at_mut(lo);
        let (gl, hl) = (split.gl, split.hl);
        let (gr, hr) = (g - gl, h - hl);
        // Histogram of the smaller child directly, the larger by subtraction.
        let (hist_l, hist_r) = if left_rows.len() <= right_rows.len() {
            let hl_hist = self.histogram(left_rows);
            let hr_hist = subtract(&hist, &hl_hist);
            (hl_hist, hr_hist)
        } else {
            let hr_hist = self.histogram(right_rows);
            let hl_hist = subtract(&hist, &hr_hist);
            (hl_hist, hr_hist)
        };
        drop(hist);
        self.gain[f] += split.gain;
        let left = self.grow(left_rows, hist_l, gl, hl, depth + 1);
        let right = self.grow(right_rows, hist_r, gr, hr, depth + 1);
        let node = &mut self.nodes[id as usize];
        node.feature = Some(f as u16);
        node.threshold = self.binner.threshold(f, split.bin);
        node.default_left = split.default_left;
        node.left = left;
        node.right = right;
        id
    }
}

fn subtract(a: &[[f64; 2]], b: &[[f64; 2]]) -> Vec<[f64; 2]> {
    a.iter()
        .zip(b)
        .map(|(x, y)| [x[0] - y[0], x[1] - y[1]])
        .collect()
}

/// Progress of training, reported after every tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainProgress {
    /// Trees built so far.
    pub trees: usize,
    /// Training weighted log-loss.
    pub train_loss: f64,
    /// Validation log-loss (unweighted, prior-corrected), if a validation set was given.
    pub valid_loss: Option<f64>,
}

/// Result of [`train`].
#[derive(Debug, Clone)]
pub struct Trained {
    /// The ensemble, truncated to the best validation iteration.
    pub ensemble: Ensemble,
    /// Trees built before stopping.
    pub trees_built: usize,
    /// Number of trees kept.
    pub best_trees: usize,
    /// The positive-class weight used.
    pub scale_pos_weight: f64,
    /// Best validation log-loss (unweighted, prior-corrected), if validated.
    pub best_valid_loss: Option<f64>,
}

fn logloss(margins: &[f64], labels: &[bool], pos_w: f64) -> f64 {
    let mut loss = 0.0;
    let mut wsum = 0.0;
    for (&m, &y) in margins.iter().zip(labels) {
        let w = if y { pos_w } else { 1.0 };
        // log(1 + e^-m) for y=1, log(1 + e^m) for y=0, computed stably.
        let z = if y { -m } else { m };
        loss += w * (z.max(0.0) + (-z.abs()).exp().ln_1p());
        wsum += w;
    }
    if wsum > 0.0 {
        loss / wsum
    } else {
        0.0
    }
}

/// Fit Platt scaling `p = sigmoid(a * margin + b)` on (margin, label) pairs.
///
/// Newton's method with Platt's smoothed targets (`(n₊+1)/(n₊+2)` and `1/(n₋+2)`, which
/// keep the fit finite on separable data) and step halving, so every accepted step lowers
/// the loss. Returns `(1, 0)` with a single class or if the fit would flip the order.
pub fn fit_platt(margins: &[f64], labels: &[bool]) -> (f64, f64) {
    let npos = labels.iter().filter(|&&y| y).count() as f64;
    let nneg = labels.len() as f64 - npos;
    if npos == 0.0 || nneg == 0.0 || margins.len() != labels.len() {
        return (1.0, 0.0);
    }
    let hi = (npos + 1.0) / (npos + 2.0);
    let lo = 1.0 / (nneg + 2.0);
    let loss = |a: f64, b: f64| -> f64 {
        margins
            .iter()
            .zip(labels)
            .map(|(&m, &y)| {
                let t = if y { hi } else { lo };
                let z = a * m + b;
                // t * softplus(-z) + (1 - t) * softplus(z)
                let sp = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
                t * sp(-z) + (1.0 - t) * sp(z)
            })
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 0.0f64);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
        for (&m, &y) in margins.iter().zip(labels) {
            let p = sigmoid(a * m + b);
            let r = p - if y { hi } else { lo };
            let w = (p * (1.0 - p)).max(1e-12);
            ga += r * m;
            gb += r;
            haa += w * m * m;
            hab += w * m;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if !(det.is_finite() && det > 0.0) {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        let mut step = 1.0;
        let mut improved = false;
        while step > 1e-10 {
            let (na, nb) = (a - step * da, b - step * db);
            let l = loss(na, nb);
            if l.is_finite() && l <= current {
                improved = current - l > 1e-12 * current.abs().max(1.0);
                a = na;
                b = nb;
                current = l;
                break;
            }
            step /= 2.0;
        }
        if !improved {
            break;
        }
    }
    if a.is_finite() && b.is_finite() && a > 0.0 {
        (a, b)
    } else {
        (1.0, 0.0)
    }
}

/// Train an ensemble on `train`, early-stopping on `valid` when given.
///
/// `progress` is called after each tree (for progress bars).
pub fn train(
    train_set: &Dataset,
    valid: Option<&Dataset>,
    params: &GbdtParams,
    mut progress: impl FnMut(TrainProgress),
) -> Result<Trained, DetectError> {
    let n = train_set.len();
    let nf = train_set.n_features;
    if n == 0 {
        return Err(DetectError::Training("no training rows".into()));
    }
    if nf == 0 || nf > usize::from(u16::MAX) {
        return Err(DetectError::Training(format!(
            "unsupported feature count {nf}"
        )));
    }
    if let Some(v) = valid {
        if v.n_features != nf {
            return Err(DetectError::Training(
                "validation column count differs".into(),
            ));
        }
    }
    if !(params.learning_rate > 0.0 && params.lambda >= 0.0 && params.min_child_weight >= 0.0) {
        return Err(DetectError::Training("invalid hyper-parameters".into()));
    }
    let pos = train_set.labels.iter().filter(|&&y| y).count();
    let neg = n - pos;
    if pos == 0 || neg == 0 {
        return Err(DetectError::Training(format!(
            "training needs both classes (positives {pos}, negatives {neg})"
        )));
    }
    let spw = params
        .scale_pos_weight
        .unwrap_or_else(|| (neg as f64 / pos as f64).sqrt().clamp(1.0, 100.0))
        .max(1e-6);
    let binner = Binner::fit(train_set, params.max_bins);
    let mut bins = vec![0u8; n * nf];
    for i in 0..n {
        for f in 0..nf {
            bins[i * nf + f] = binner.bin(f, train_set.values[i * nf + f]);
        }
    }
    let wsum_pos = pos as f64 * spw;
    let p0 = wsum_pos / (wsum_pos + neg as f64);
    let base = (p0 / (1.0 - p0)).ln();
    let mut margins = vec![base; n];
    let mut valid_margins: Vec<f64> = valid.map(|v| vec![base; v.len()]).unwrap_or_default();
    let mut grad = vec![0f32; n];
    let mut hess = vec![0f32; n];
    let mut rng = SplitMix64::new(params.seed);
    let mut ensemble = Ensemble {
        base_margin: base,
        trees: Vec::new(),
        gain: vec![0.0; nf],
    };
    let mut best = (f64::INFINITY, 0usize);
    let mut rows: Vec<u32> = Vec::with_capacity(n);
    for t in 0..params.n_trees {
        for i in 0..n {
            let p = sigmoid(margins[i]);
            let (y, w) = if train_set.labels[i] {
                (1.0, spw)
            } else {
                (0.0, 1.0)
            };
            grad[i] = (w * (p - y)) as f32;
            hess[i] = (w * (p * (1.0 - p)).max(1e-16)) as f32;
        }
        rows.clear();
        if params.subsample >= 1.0 {
            rows.extend(0..n as u32);
        } else {
            rows.extend((0..n as u32).filter(|_| rng.next_f64() < params.subsample));
        }
        if rows.is_empty() {
            continue;
        }
        let mut features: Vec<usize> = if params.colsample >= 1.0 {
            (0..nf).collect()
        } else {
            (0..nf)
                .filter(|_| rng.next_f64() < params.colsample)
                .collect()
        };
        if features.is_empty() {
            features.push((rng.next_u64() % nf as u64) as usize);
        }
        let (g, h) = rows.iter().fold((0.0, 0.0), |(g, h), &r| {
            (
                g + f64::from(grad[r as usize]),
                h + f64::from(hess[r as usize]),
            )
        });
        let mut grower = Grower {
            binner: &binner,
            bins: &bins,
            n_features: nf,
            grad: &grad,
            hess: &hess,
            params,
            features,
            nodes: Vec::new(),
            gain: &mut ensemble.gain,
        };
        let hist = grower.histogram(&rows);
        grower.grow(&mut rows, hist, g, h, 0);
        let tree = Tree {
            nodes: grower.nodes,
        };
        debug_assert!(tree.validate(nf).is_ok());
        for (i, m) in margins.iter_mut().enumerate() {
            *m += f64::from(tree.predict(&train_set.values[i * nf..(i + 1) * nf]));
        }
        let mut valid_loss = None;
        if let Some(v) = valid {
            for (i, m) in valid_margins.iter_mut().enumerate() {
                *m += f64::from(tree.predict(v.row(i)));
            }
            // Unweighted log-loss of the prior-corrected margin: the quantity the
            // served probability is judged on.
            let shift = spw.ln();
            let corrected: Vec<f64> = valid_margins.iter().map(|m| m - shift).collect();
            let l = logloss(&corrected, &v.labels, 1.0);
            valid_loss = Some(l);
            if l < best.0 - 1e-7 {
                best = (l, t + 1);
            }
        }
        ensemble.trees.push(tree);
        progress(TrainProgress {
            trees: t + 1,
            train_loss: logloss(&margins, &train_set.labels, spw),
            valid_loss,
        });
        if valid.is_some()
            && params.early_stopping_rounds > 0
            && t + 1 >= best.1 + params.early_stopping_rounds
        {
            tracing::debug!(trees = t + 1, best = best.1, "early stopping");
            break;
        }
    }
    let trees_built = ensemble.trees.len();
    let best_trees = if valid.is_some() && best.1 > 0 {
        best.1
    } else {
        trees_built
    };
    ensemble.trees.truncate(best_trees);
    // Undo the class weighting in the prior so outputs estimate unweighted probabilities.
    ensemble.base_margin = base - spw.ln();
    Ok(Trained {
        ensemble,
        trees_built,
        best_trees,
        scale_pos_weight: spw,
        best_valid_loss: valid.map(|_| best.0),
    })
}
