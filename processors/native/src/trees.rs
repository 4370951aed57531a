//! `Forest`: a `binary:logistic` gradient-boosted tree ensemble's probabilities, to the bit
//! what XGBoost 3.2's CPU predictor gives (`XGBoosterPredictFromDense`, NaN as missing, no
//! base margin), without its fixed cost of ~200-400 µs a call. `models/forest.py` reads the
//! booster's JSON model into it and refuses every model this does not do (categorical splits,
//! dart, several outputs, other objectives); `tests/unit/test_models_forest.py` compares the
//! two bit for bit.
//!
//! The arithmetic is XGBoost's (`src/predictor/cpu_predictor.cc`, `predict_fn.h`,
//! `src/objective/regression_loss.h`, `src/common/math.h`), all in float32:
//!
//! - the margin starts at `ProbToMargin(base_score)`: the base score clamped to
//!   [1e-6, 1 - 1e-6], then `-logf(1 / p - 1)`;
//! - each tree, in order, adds its leaf's value. At a split a missing (NaN) value takes the
//!   default child; any other value (±inf included) goes left when `value < condition`, else
//!   to the right child, which XGBoost's predictor takes to be `left + 1` (checked here);
//! - the probability is `Sigmoid`: `1 / (expf(min(-margin, 88.7)) + 1 + 1e-16)`.
//!
//! `expf` and `logf` are libm's, the functions libxgboost.so calls (`nm -D`: `expf@GLIBC_2.27`,
//! `logf@GLIBC_2.27`), so the last bit of each is the same too.

use pyo3::buffer::{PyBuffer, ReadOnlyCell};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

extern "C" {
    fn expf(x: f32) -> f32;
    fn logf(x: f32) -> f32;
}

/// Rows walked through a tree together: their walks are independent, so the processor
/// overlaps them (XGBoost walks blocks of 64 rows for the same reason).
const BLOCK: usize = 8;

/// A split on `feature` at `condition` (children `left`, `left + 1`; `default_left` says
/// where a missing value goes); a leaf holds its `leaf` value and steps to itself (below).
struct Node {
    condition: f32,
    leaf: f32,
    left: u32,
    feature: u32,
    default_left: bool,
}

impl Node {
    /// A leaf's node steps to itself from whatever row: its `left` is the node before it
    /// and its condition NaN (no value is below NaN, so every row goes to `left + 1`).
    fn leaf(at: u32, value: f32) -> Node {
        let before = at.wrapping_sub(1); // at the root (a one-leaf tree), wraps back to 0
        Node {
            condition: f32::NAN,
            leaf: value,
            left: before,
            feature: 0,
            default_left: false,
        }
    }

    /// The next node for `row` (`predictor::GetNextNode`), branch-free: a missing value
    /// goes the default way, any other `value < condition` left, else right. `|` and `&`,
    /// not `||` and `&&`: that branch goes either way half the time, and its mispredictions
    /// cost more than the walk (500 rows of the decide path: 3.8 ms with it, 1.9 without).
    fn next(&self, row: &[ReadOnlyCell<f32>]) -> u32 {
        let x = row[self.feature as usize].get();
        let go_left = (x < self.condition) | (x.is_nan() & self.default_left);
        self.left.wrapping_add(u32::from(!go_left))
    }
}

/// A tree's nodes, the root first, and its `depth`: after that many steps every walk is at
/// a leaf, and stays there.
struct Tree {
    nodes: Vec<Node>,
    depth: usize,
}

impl Tree {
    /// Adds to each row's margin its leaf's value (`predictor::PredValueByOneTree`).
    fn add_leaves(&self, rows: &[ReadOnlyCell<f32>], width: usize, margins: &mut [f32]) {
        let mut at = [0u32; BLOCK];
        for _ in 0..self.depth {
            for (k, row) in rows.chunks_exact(width).enumerate() {
                at[k] = self.nodes[at[k] as usize].next(row);
            }
        }
        for (margin, &at) in margins.iter_mut().zip(&at) {
            *margin += self.nodes[at as usize].leaf;
        }
    }
}

/// `LogisticRegression::ProbToMargin`.
fn prob_to_margin(base_score: f32) -> f32 {
    const RT_EPS: f32 = 1e-6; // kRtEps, a float literal
    let p = base_score.max(RT_EPS).min(1.0 - RT_EPS);
    -unsafe { logf(1.0 / p - 1.0) }
}

/// `common::Sigmoid(float)`.
fn sigmoid(margin: f32) -> f32 {
    // `float constexpr kEps = 1e-16;` (a double, made float): added to a sum >= 1 it never
    // changes a float32, but it is written as XGBoost writes it
    const EPS: f32 = 1e-16_f64 as f32;
    let x = if 88.7_f32 < -margin { 88.7 } else { -margin }; // std::min(-x, 88.7f)
    1.0 / (unsafe { expf(x) } + 1.0 + EPS)
}

/// One tree from XGBoost's JSON arrays; only the nodes reachable from the root are read (a
/// pruned tree keeps its deleted nodes), and each must be a leaf or a numeric split whose
/// children come after it, side by side, on a feature below `features`, and are no other
/// node's: so every walk is at a leaf after `depth` steps.
fn tree_of(
    features: usize,
    left: &[i32],
    right: &[i32],
    split_index: &[u32],
    split_condition: &[String],
    default_left: &[u8],
) -> Result<Tree, String> {
    let n = left.len();
    let lengths = [
        right.len(),
        split_index.len(),
        split_condition.len(),
        default_left.len(),
    ];
    if n == 0 || lengths.iter().any(|&len| len != n) {
        return Err(format!(
            "its node arrays are empty or of different lengths ({n})"
        ));
    }
    let mut depth_of = vec![None; n];
    depth_of[0] = Some(0);
    let mut nodes = Vec::with_capacity(n);
    for at in 0..n {
        let value = split_condition[at]
            .parse::<f32>()
            .map_err(|_| format!("node {at}: {:?} is not a number", split_condition[at]))?;
        let (l, r) = (left[at], right[at]);
        let Some(depth) = depth_of[at] else {
            nodes.push(Node::leaf(at as u32, 0.0)); // unreachable
            continue;
        };
        if l == -1 && r == -1 {
            nodes.push(Node::leaf(at as u32, value));
            continue;
        }
        if l <= at as i32 || r != l + 1 || r as usize >= n {
            return Err(format!(
                "node {at}: children {l}, {r} are not the next pair after it"
            ));
        }
        if split_index[at] as usize >= features {
            return Err(format!(
                "node {at}: feature {} of {features}",
                split_index[at]
            ));
        }
        if depth_of[l as usize].is_some() || depth_of[r as usize].is_some() {
            return Err(format!("node {at}: a child of another node too"));
        }
        depth_of[l as usize] = Some(depth + 1);
        depth_of[r as usize] = Some(depth + 1);
        nodes.push(Node {
            condition: value,
            leaf: 0.0,
            left: l as u32,
            feature: split_index[at],
            default_left: default_left[at] != 0,
        });
    }
    let depth = depth_of.iter().flatten().copied().max().unwrap_or(0);
    Ok(Tree { nodes, depth })
}

type TreeArrays = (Vec<i32>, Vec<i32>, Vec<u32>, Vec<String>, Vec<u8>);

#[pyclass(frozen)]
pub struct Forest {
    margin: f32,
    features: usize,
    trees: Vec<Tree>,
}

#[pymethods]
impl Forest {
    /// `base_score` as XGBoost writes it (a probability), `features` the row width, `trees`
    /// each tree's `left_children`, `right_children`, `split_indices`, `split_conditions` (as
    /// written: parsed here straight to float32) and `default_left`. ValueError for anything
    /// it cannot read.
    #[new]
    fn new(base_score: &str, features: usize, trees: Vec<TreeArrays>) -> PyResult<Self> {
        let score = base_score
            .parse::<f32>()
            .ok()
            .filter(|s| (0.0..=1.0).contains(s));
        let Some(score) = score else {
            return Err(PyValueError::new_err(format!(
                "base_score {base_score:?} not in [0, 1]"
            )));
        };
        if features == 0 || trees.is_empty() {
            return Err(PyValueError::new_err("no features or no trees"));
        }
        let trees = trees
            .iter()
            .enumerate()
            .map(|(i, (l, r, f, c, d))| {
                tree_of(features, l, r, f, c, d)
                    .map_err(|e| PyValueError::new_err(format!("tree {i}, {e}")))
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Forest {
            margin: prob_to_margin(score),
            features,
            trees,
        })
    }

    /// Fills `out` (float32, one per row) with the probabilities of the rows of `x` (a
    /// C-contiguous float32 matrix `features` wide). It keeps the GIL: a live batch takes
    /// tens of µs, and in the worker a call that lets the GIL go waits several times its own
    /// time to get it back (README, Known limitations, Latency).
    fn predict(&self, py: Python<'_>, x: PyBuffer<f32>, out: PyBuffer<f32>) -> PyResult<()> {
        let rows = match x.shape() {
            [rows, width] if *width == self.features && x.is_c_contiguous() => *rows,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "x must be a C-contiguous float32 matrix {} wide",
                    self.features
                )))
            }
        };
        if out.shape() != [rows] || out.readonly() || !out.is_c_contiguous() {
            return Err(PyValueError::new_err(
                "out must be a writable float32 vector, one per row",
            ));
        }
        let (Some(x), Some(out)) = (x.as_slice(py), out.as_mut_slice(py)) else {
            return Err(PyValueError::new_err("x and out must be contiguous"));
        };
        let width = self.features;
        for (rows, out) in x.chunks(BLOCK * width).zip(out.chunks(BLOCK)) {
            let mut margins = [self.margin; BLOCK];
            let margins = &mut margins[..out.len()];
            for tree in &self.trees {
                tree.add_leaves(rows, width, margins);
            }
            for (p, &margin) in out.iter().zip(margins.iter()) {
                p.set(sigmoid(margin));
            }
        }
        Ok(())
    }

    /// The number of trees.
    fn __len__(&self) -> usize {
        self.trees.len()
    }
}
