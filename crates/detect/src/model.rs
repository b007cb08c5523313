//! The model file: a versioned, fingerprinted GBDT ensemble.
//!
//! JSON layout (format version 1):
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "feature_set": { "version": 1, "fingerprint": "…16 hex…", "names": ["amount", …] },
//!   "base_margin": -4.2,
//!   "trees": [ { "nodes": [[feature|-1, threshold, default_left, left, right, value], …] } ],
//!   "meta": { "model_id": "…", "trained_rows": …, … }
//! }
//! ```
//!
//! Loading checks the format version, then that the feature set (fingerprint, names and
//! order) is exactly the one this engine computes, then the tree structure.

use serde::{Deserialize, Serialize};

use crate::error::DetectError;
use crate::features::{feature_names, feature_set_fingerprint, FEATURE_SET_VERSION, NUM_FEATURES};
use crate::gbdt::{Ensemble, Node, Tree};
use crate::hash::fnv1a64;

/// The model file format this build writes and reads.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// Feature-set identity recorded in a model file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSetInfo {
    /// [`FEATURE_SET_VERSION`] at training time.
    pub version: u32,
    /// [`feature_set_fingerprint`] at training time.
    pub fingerprint: String,
    /// Feature names in column order.
    pub names: Vec<String>,
}

impl FeatureSetInfo {
    /// The feature set this build computes.
    pub fn current() -> Self {
        Self {
            version: FEATURE_SET_VERSION,
            fingerprint: feature_set_fingerprint(),
            names: feature_names().into_iter().map(str::to_owned).collect(),
        }
    }
}

/// Facts about how a model was trained, kept in the file for humans and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelMeta {
    /// Content hash of the trees (set on save).
    pub model_id: String,
    /// Training rows.
    pub trained_rows: usize,
    /// Positive training rows.
    pub trained_positives: usize,
    /// Validation rows.
    pub validation_rows: usize,
    /// Validation average precision.
    pub validation_ap: Option<f64>,
    /// Validation ROC AUC.
    pub validation_auc: Option<f64>,
    /// Positive-class weight used in training.
    pub scale_pos_weight: f64,
    /// Top features by split gain: (name, share of total gain).
    pub importance: Vec<(String, f64)>,
    /// Free-form note (e.g. the training command).
    pub note: String,
    /// How merchant state was kept in training ([`crate::EngineConfig::merchant_state`]);
    /// empty in files written before it was recorded (they were trained per partition).
    pub merchant_state: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TreeRepr {
    /// `[feature (-1 = leaf), threshold, default_left (0/1), left, right, value]`.
    nodes: Vec<(i32, f32, u8, u32, u32, f32)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ModelFile {
    format_version: u32,
    feature_set: FeatureSetInfo,
    base_margin: f64,
    /// `[a, b]`: calibrated margin = a * raw margin + b.
    #[serde(default = "identity_calibration")]
    calibration: [f64; 2],
    trees: Vec<TreeRepr>,
    #[serde(default)]
    meta: ModelMeta,
}

/// A loaded model bound to this engine's feature set.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    ensemble: Ensemble,
    /// Platt calibration applied to the raw margin: `a * margin + b`.
    calibration: [f64; 2],
    compiled: Compiled,
    meta: ModelMeta,
    version: String,
}

/// A 16-byte node of the inference layout. A leaf points to itself on both sides and
/// keeps its value in `threshold`, so every tree can be walked a fixed number of steps
/// without testing for leaves.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Packed {
    threshold: f32,
    left: u32,
    right: u32,
    /// Index into the doubled feature vector: `f` reads the value with missing = −∞
    /// (missing goes left), `f + NUM_FEATURES` with missing = +∞ (missing goes right).
    feature: u16,
}

/// How many trees are walked side by side: independent walks overlap in the CPU, which
/// hides the latency of each dependent node load.
const LANES: usize = 8;

/// All trees in one array for fast, branch-light prediction.
#[derive(Debug, Clone, Default, PartialEq)]
struct Compiled {
    nodes: Vec<Packed>,
    roots: Vec<u32>,
    /// Longest root-to-leaf path over all trees (edges).
    depth: usize,
}

fn tree_depth(t: &Tree, i: usize) -> usize {
    match t.nodes.get(i) {
        Some(n) if n.feature.is_some() => {
            1 + tree_depth(t, n.left as usize).max(tree_depth(t, n.right as usize))
        }
        _ => 0,
    }
}

impl Compiled {
    fn new(trees: &[Tree]) -> Self {
        let mut c = Compiled::default();
        for t in trees {
            let base = c.nodes.len() as u32;
            c.roots.push(base);
            c.depth = c.depth.max(tree_depth(t, 0));
            for (i, n) in t.nodes.iter().enumerate() {
                let me = base + i as u32;
                c.nodes.push(match n.feature {
                    None => Packed {
                        threshold: n.value,
                        left: me,
                        right: me,
                        feature: 0,
                    },
                    Some(f) => Packed {
                        threshold: n.threshold,
                        left: base + n.left,
                        right: base + n.right,
                        feature: if n.default_left {
                            f
                        } else {
                            f.saturating_add(NUM_FEATURES as u16)
                        },
                    },
                });
            }
        }
        c
    }

    #[inline]
    fn sum(&self, x: &[f32]) -> f64 {
        // Missing values become −∞ (first half) or +∞ (second half), so a node's single
        // comparison also routes missing values to its default side.
        let mut xx = [0f32; 2 * NUM_FEATURES];
        let (lo, hi) = xx.split_at_mut(NUM_FEATURES);
        for (k, (l, h)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
            let v = x.get(k).copied().unwrap_or(f32::NAN);
            (*l, *h) = if v.is_nan() {
                (f32::NEG_INFINITY, f32::INFINITY)
            } else {
                (v, v)
            };
        }
        let mut total = 0f64;
        for chunk in self.roots.chunks(LANES) {
            let mut idx = [0u32; LANES];
            idx[..chunk.len()].copy_from_slice(chunk);
            let lanes = &mut idx[..chunk.len()];
            for _ in 0..self.depth {
                for i in lanes.iter_mut() {
                    let Some(n) = self.nodes.get(*i as usize) else {
                        continue;
                    };
                    let v = xx.get(usize::from(n.feature)).copied().unwrap_or(0.0);
                    *i = if v <= n.threshold { n.left } else { n.right };
                }
            }
            for &i in lanes.iter() {
                total += f64::from(self.nodes.get(i as usize).map_or(0.0, |n| n.threshold));
            }
        }
        total
    }
}

fn identity_calibration() -> [f64; 2] {
    [1.0, 0.0]
}

fn tree_to_repr(t: &Tree) -> TreeRepr {
    TreeRepr {
        nodes: t
            .nodes
            .iter()
            .map(|n| {
                (
                    n.feature.map_or(-1, i32::from),
                    n.threshold,
                    u8::from(n.default_left),
                    n.left,
                    n.right,
                    n.value,
                )
            })
            .collect(),
    }
}

fn tree_from_repr(r: &TreeRepr) -> Result<Tree, DetectError> {
    let mut nodes = Vec::with_capacity(r.nodes.len());
    for &(f, threshold, dl, left, right, value) in &r.nodes {
        let feature = match f {
            -1 => None,
            f => Some(
                u16::try_from(f)
                    .map_err(|_| DetectError::ModelInvalid(format!("feature index {f}")))?,
            ),
        };
        nodes.push(Node {
            feature,
            threshold,
            default_left: dl != 0,
            left,
            right,
            value,
        });
    }
    let tree = Tree { nodes };
    tree.validate(NUM_FEATURES)
        .map_err(DetectError::ModelInvalid)?;
    Ok(tree)
}

fn content_id(base_margin: f64, calibration: [f64; 2], trees: &[TreeRepr]) -> String {
    let text = serde_json::to_string(trees).unwrap_or_default();
    let [a, b] = calibration;
    let h = fnv1a64(format!("{base_margin:e}|{a:e}|{b:e}|{text}").as_bytes());
    format!("{h:016x}")
}

impl Model {
    /// Wrap a trained ensemble (columns in [`crate::Feature::ALL`] order).
    pub fn new(ensemble: Ensemble, mut meta: ModelMeta) -> Self {
        let reprs: Vec<TreeRepr> = ensemble.trees.iter().map(tree_to_repr).collect();
        meta.model_id = content_id(ensemble.base_margin, identity_calibration(), &reprs);
        let version = version_string(&meta.model_id);
        Self {
            compiled: Compiled::new(&ensemble.trees),
            calibration: identity_calibration(),
            ensemble,
            meta,
            version,
        }
    }

    /// Set the Platt calibration `[a, b]` (calibrated margin = a * raw + b, a > 0 keeps
    /// the order of scores). Non-finite or non-positive slopes are ignored.
    pub fn with_calibration(mut self, a: f64, b: f64) -> Self {
        if a.is_finite() && a > 0.0 && b.is_finite() {
            self.calibration = [a, b];
            let reprs: Vec<TreeRepr> = self.ensemble.trees.iter().map(tree_to_repr).collect();
            self.meta.model_id = content_id(self.ensemble.base_margin, self.calibration, &reprs);
            self.version = version_string(&self.meta.model_id);
        }
        self
    }

    /// The calibration `[a, b]`.
    pub fn calibration(&self) -> [f64; 2] {
        self.calibration
    }

    /// The ensemble.
    pub fn ensemble(&self) -> &Ensemble {
        &self.ensemble
    }

    /// Training facts.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// Version string recorded in decisions: `gbdt-v<format>-<feature fingerprint 8>-<model id 8>`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The margin (log-odds) for a feature vector.
    pub fn margin(&self, x: &[f32]) -> f64 {
        let [a, b] = self.calibration;
        a * (self.ensemble.base_margin + self.compiled.sum(x)) + b
    }

    /// The margin, and per-feature contributions added into `contrib` (length
    /// [`NUM_FEATURES`]); returns (margin, bias) where margin = bias + Σ contrib.
    pub fn margin_with_contrib(&self, x: &[f32], contrib: &mut [f32]) -> (f64, f64) {
        let mut margin = self.ensemble.base_margin;
        let mut bias = self.ensemble.base_margin;
        let mut raw = vec![0f32; contrib.len()];
        for t in &self.ensemble.trees {
            margin += f64::from(t.predict_contrib(x, &mut raw));
            bias += f64::from(t.nodes.first().map_or(0.0, |n| n.value));
        }
        let [a, b] = self.calibration;
        for (c, r) in contrib.iter_mut().zip(&raw) {
            *c += (a * f64::from(*r)) as f32;
        }
        (a * margin + b, a * bias + b)
    }

    /// Serialise to the JSON model file format.
    pub fn to_json(&self) -> String {
        let file = ModelFile {
            format_version: MODEL_FORMAT_VERSION,
            feature_set: FeatureSetInfo::current(),
            base_margin: self.ensemble.base_margin,
            calibration: self.calibration,
            trees: self.ensemble.trees.iter().map(tree_to_repr).collect(),
            meta: self.meta.clone(),
        };
        serde_json::to_string(&file).unwrap_or_default()
    }

    /// Parse a model file, checking version, feature set and structure.
    pub fn from_json(text: &str) -> Result<Self, DetectError> {
        // Check the version before the full schema so old/new files fail clearly.
        #[derive(Deserialize)]
        struct Header {
            format_version: u32,
        }
        let header: Header = serde_json::from_str(text)?;
        if header.format_version != MODEL_FORMAT_VERSION {
            return Err(DetectError::ModelVersion {
                found: header.format_version,
                supported: MODEL_FORMAT_VERSION,
            });
        }
        let file: ModelFile = serde_json::from_str(text)?;
        let current = FeatureSetInfo::current();
        if file.feature_set != current {
            return Err(DetectError::FeatureSetMismatch {
                expected: current.fingerprint,
                expected_count: current.names.len(),
                found: file.feature_set.fingerprint,
                found_count: file.feature_set.names.len(),
            });
        }
        if !file.base_margin.is_finite() {
            return Err(DetectError::ModelInvalid("non-finite base margin".into()));
        }
        let [a, b] = file.calibration;
        if !(a.is_finite() && a > 0.0 && b.is_finite()) {
            return Err(DetectError::ModelInvalid(
                "calibration slope must be finite and positive".into(),
            ));
        }
        let trees = file
            .trees
            .iter()
            .map(tree_from_repr)
            .collect::<Result<Vec<_>, _>>()?;
        let mut meta = file.meta;
        meta.model_id = content_id(file.base_margin, file.calibration, &file.trees);
        let version = version_string(&meta.model_id);
        Ok(Self {
            compiled: Compiled::new(&trees),
            calibration: file.calibration,
            ensemble: Ensemble {
                base_margin: file.base_margin,
                trees,
                gain: Vec::new(),
            },
            meta,
            version,
        })
    }
}

fn version_string(model_id: &str) -> String {
    let fp = feature_set_fingerprint();
    format!(
        "gbdt-v{MODEL_FORMAT_VERSION}-{}-{}",
        fp.get(..8).unwrap_or(&fp),
        model_id.get(..8).unwrap_or(model_id)
    )
}
