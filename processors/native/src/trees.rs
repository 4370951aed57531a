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
//!
//! `Forest::contributions` gives, to the bit, XGBoost 3.2's Saabas contributions
//! (`Booster.predict(pred_contribs=True, approx_contribs=True)` on a DMatrix, NaN as missing:
//! `src/predictor/cpu_predictor.cc`, `PredictContribution` and `FillNodeMeanValues`;
//! `src/predictor/treeshap.cc`, `CalculateContributionsApprox`), without its fixed cost of
//! ~300 µs a call (it computes every tree's node means on each call; these are computed once,
//! here, when the forest is made) and at ~9 µs a row against its ~34, all in float32 as there:
//!
//! - a node's mean is its leaf value, or `(mean(left) * hess(left) + mean(right) *
//!   hess(right)) / hess(node)`, `hess` its `sum_hessian`;
//! - each tree, in order, gives a vector of zeros `features + 1` long: its root's mean added
//!   to the last (the bias), then along the row's walk `mean(next) - mean(node)` added to the
//!   split's feature, and at the leaf `leaf - mean(leaf)` to the last split's feature; the
//!   row's contributions (zeros at first) add that vector, column by column. The vector is a
//!   function of the leaf the walk ends at, so each leaf's is made once, with the forest
//!   (`leaf_contributions`), and a row's walk only finds its leaves;
//! - last, the base margin (`ProbToMargin(base_score)`) is added to the bias.
//!
//! XGBoost refuses a DMatrix holding ±inf (`Input data contains inf`): so does this (a
//! ValueError), and the caller asks XGBoost, which raises as before.

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

/// A block of fewer rows than this (a live batch of a few) is walked row by row, `TREES`
/// trees at a time (`Forest::margin_of`): a row's walk down one tree is a chain of dependent
/// loads, and a few rows are too few chains to overlap.
const FEW: usize = 3;
const TREES: usize = 8;

/// A split on `feature` at `condition` (children `left`, `left + 1`; `default_left` says
/// where a missing value goes); a leaf steps to itself (below). What a walk reads of a node,
/// and no more: 12 bytes (a leaf's value is in `Tree::leaves`), so the walks of a batch read
/// fewer cache lines (the champion's 20 474 nodes: 246 against 410 KB, in a 1 MB L2 that the
/// rest of `decide_batch` shares).
#[derive(Clone, Copy)]
struct Node {
    condition: f32,
    left: u32,
    feature: u16,
    default_left: bool,
}

impl Node {
    /// A leaf's node steps to itself from whatever row: its `left` is the node before it
    /// and its condition NaN (no value is below NaN, so every row goes to `left + 1`).
    fn leaf(at: u32) -> Node {
        let before = at.wrapping_sub(1); // at the root (a one-leaf tree), wraps back to 0
        Node {
            condition: f32::NAN,
            left: before,
            feature: 0,
            default_left: false,
        }
    }

    /// The next node for `row` (`predictor::GetNextNode`), branch-free: a missing value
    /// goes the default way, any other `value < condition` left, else right. `|` and `&`,
    /// not `||` and `&&`: that branch goes either way half the time, and its mispredictions
    /// cost more than the walk (500 rows of the decide path: 3.8 ms with it, 1.9 without).
    /// `DENSE`: the caller checked that the row holds no NaN (the decide path's never do:
    /// a missing feature is -1.0), so `value < condition` alone decides, in about half the
    /// instructions a step (the same node: with no NaN the default side is never taken).
    ///
    /// `row` must be at least `feature + 1` long: `tree_of` checked every split's feature
    /// against the forest's width, and `Forest::rows` every row's width, so the value is
    /// read without a bounds check (one less compare and branch a step).
    #[inline(always)]
    fn next<const DENSE: bool>(&self, row: &[ReadOnlyCell<f32>]) -> u32 {
        debug_assert!((self.feature as usize) < row.len());
        // SAFETY: in bounds, as said above
        let x = unsafe { row.get_unchecked(self.feature as usize) }.get();
        let go_left = if DENSE {
            x < self.condition
        } else {
            (x < self.condition) | (x.is_nan() & self.default_left)
        };
        self.left.wrapping_add(u32::from(!go_left))
    }
}

/// A tree's nodes, the root first, and its `depth`: after that many steps every walk is at
/// a leaf, and stays there. `leaves[at]`: the value of the leaf at `at` (0 at a split).
/// `paths[leaf]`: where in `contributions` the vector of a walk
/// ending at that leaf is (`leaf_contributions`); none when the forest was made without the
/// trees' `sum_hessian`.
struct Tree {
    nodes: Vec<Node>,
    leaves: Vec<f32>,
    depth: usize,
    paths: Vec<(u32, u32)>,
    contributions: Vec<(u32, f32)>,
}

impl Tree {
    /// The node after `at` for `row` (`Node::next`). Every node steps to one of the tree's
    /// nodes (`tree_of` checked a split's children, a leaf steps to itself), so a walk from
    /// the root never leaves `nodes` and the node is read without a bounds check.
    #[inline(always)]
    fn step<const DENSE: bool>(&self, at: u32, row: &[ReadOnlyCell<f32>]) -> u32 {
        debug_assert!((at as usize) < self.nodes.len());
        // SAFETY: in bounds, as said above
        unsafe { self.nodes.get_unchecked(at as usize) }.next::<DENSE>(row)
    }

    /// Adds to each row's margin its leaf's value (`predictor::PredValueByOneTree`).
    fn add_leaves<const DENSE: bool>(&self, rows: &[ReadOnlyCell<f32>], width: usize,
                                     margins: &mut [f32]) {
        let mut at = [0u32; BLOCK];
        for _ in 0..self.depth {
            for (at, row) in at.iter_mut().zip(rows.chunks_exact(width)) {
                *at = self.step::<DENSE>(*at, row);
            }
        }
        for (margin, &at) in margins.iter_mut().zip(&at) {
            *margin += self.leaves[at as usize];
        }
    }

    /// `add_leaves` of a whole block (exactly `BLOCK` rows): the same walks, without a
    /// test of the block's length at every step.
    fn add_block_leaves<const DENSE: bool>(&self, rows: &[&[ReadOnlyCell<f32>]; BLOCK],
                                           margins: &mut [f32; BLOCK]) {
        let mut at = [0u32; BLOCK];
        for _ in 0..self.depth {
            for (at, row) in at.iter_mut().zip(rows) {
                *at = self.step::<DENSE>(*at, row);
            }
        }
        for (margin, &at) in margins.iter_mut().zip(&at) {
            *margin += self.leaves[at as usize];
        }
    }
}

/// Per node (start, length) into the list of (column, value) (`leaf_contributions`).
type LeafVectors = (Vec<(u32, u32)>, Vec<(u32, f32)>);

/// Each reachable leaf's tree vector of Saabas contributions (`CalculateContributionsApprox`
/// of a row whose walk ends there: the vector is the walk's, and the walk the leaf's), as
/// (column, value) for the columns it adds to, made as XGBoost makes it: a vector of zeros
/// (`features + 1` long), the root's mean added to the bias (column `features`); along the
/// walk, at each split `mean(next) - mean(node)` added to the split's feature; at the leaf,
/// `leaf - mean(leaf)` added to the last split's feature (none for a one-leaf tree). Gives,
/// per node, its (start, length) in the flat list of (column, value).
fn leaf_contributions(
    nodes: &[Node],
    leaves: &[Option<f32>],
    reachable: &[bool],
    means: &[f32],
    features: usize,
) -> LeafVectors {
    let mut parent = vec![usize::MAX; nodes.len()];
    for (at, node) in nodes.iter().enumerate() {
        if reachable[at] && leaves[at].is_none() {
            parent[node.left as usize] = at;
            parent[node.left as usize + 1] = at;
        }
    }
    let mut paths = vec![(0u32, 0u32); nodes.len()];
    let mut contributions = Vec::new();
    let mut path = Vec::new();
    for (leaf, value) in leaves.iter().enumerate().filter(|&(at, _)| reachable[at]) {
        let Some(value) = *value else { continue };
        path.clear();
        let mut at = leaf;
        while at != 0 {
            path.push(at);
            at = parent[at];
        }
        path.push(0);
        path.reverse(); // the root first, the leaf last
        let start = contributions.len();
        let mut add = |column: usize, value: f32| {
            let column = column as u32;
            match contributions[start..]
                .iter_mut()
                .find(|(c, _)| *c == column)
            {
                Some((_, sum)) => *sum += value,
                None => contributions.push((column, 0.0f32 + value)), // the vector's zero
            }
        };
        let mut node_value = means[0];
        add(features, node_value);
        for step in path.windows(2) {
            let new_value = means[step[1]];
            add(nodes[step[0]].feature as usize, new_value - node_value);
            node_value = new_value;
        }
        if path.len() > 1 {
            let last_split = nodes[path[path.len() - 2]].feature as usize;
            add(last_split, value - node_value);
        }
        paths[leaf] = (start as u32, (contributions.len() - start) as u32);
    }
    (paths, contributions)
}

/// `FillNodeMeanValues` of the nodes reachable from the root (`reachable`), the others 0;
/// `leaves[at]` is the value of the leaf at `at`, None at a split.
/// Children come after their node (`tree_of` checked), so from the last node back every
/// child's mean is known before its node's: the same values as XGBoost's recursion, which
/// computes each node's mean from its children's alone.
fn means_of(
    nodes: &[Node],
    leaves: &[Option<f32>],
    reachable: &[bool],
    hessians: &[f32],
) -> Vec<f32> {
    let mut means = vec![0.0f32; nodes.len()];
    for at in (0..nodes.len()).rev() {
        if !reachable[at] {
            continue;
        }
        means[at] = if let Some(value) = leaves[at] {
            value
        } else {
            let (l, r) = (nodes[at].left as usize, nodes[at].left as usize + 1);
            let mut result = means[l] * hessians[l];
            result += means[r] * hessians[r];
            result / hessians[at]
        };
    }
    means
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
    sum_hessian: Option<&[String]>,
) -> Result<Tree, String> {
    let n = left.len();
    let lengths = [
        right.len(),
        split_index.len(),
        split_condition.len(),
        default_left.len(),
        sum_hessian.map_or(n, <[String]>::len),
    ];
    if n == 0 || lengths.iter().any(|&len| len != n) {
        return Err(format!(
            "its node arrays are empty or of different lengths ({n})"
        ));
    }
    let mut depth_of = vec![None; n];
    depth_of[0] = Some(0);
    let mut nodes = Vec::with_capacity(n);
    let mut leaves = vec![None; n];
    for at in 0..n {
        let value = split_condition[at]
            .parse::<f32>()
            .map_err(|_| format!("node {at}: {:?} is not a number", split_condition[at]))?;
        let (l, r) = (left[at], right[at]);
        let Some(depth) = depth_of[at] else {
            nodes.push(Node::leaf(at as u32)); // unreachable
            continue;
        };
        if l == -1 && r == -1 {
            nodes.push(Node::leaf(at as u32));
            leaves[at] = Some(value);
            continue;
        }
        if l <= at as i32 || r != l + 1 || r as usize >= n {
            return Err(format!(
                "node {at}: children {l}, {r} are not the next pair after it"
            ));
        }
        let feature = u16::try_from(split_index[at])
            .ok()
            .filter(|&f| usize::from(f) < features)
            .ok_or_else(|| format!("node {at}: feature {} of {features}", split_index[at]))?;
        if depth_of[l as usize].is_some() || depth_of[r as usize].is_some() {
            return Err(format!("node {at}: a child of another node too"));
        }
        depth_of[l as usize] = Some(depth + 1);
        depth_of[r as usize] = Some(depth + 1);
        nodes.push(Node {
            condition: value,
            left: l as u32,
            feature,
            default_left: default_left[at] != 0,
        });
    }
    let depth = depth_of.iter().flatten().copied().max().unwrap_or(0);
    let (paths, contributions) = match sum_hessian {
        None => (Vec::new(), Vec::new()),
        Some(texts) => {
            let hessians = texts
                .iter()
                .enumerate()
                .map(|(at, text)| {
                    text.parse::<f32>()
                        .map_err(|_| format!("node {at}: sum_hessian {text:?} is not a number"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let reachable: Vec<bool> = depth_of.iter().map(Option::is_some).collect();
            let means = means_of(&nodes, &leaves, &reachable, &hessians);
            leaf_contributions(&nodes, &leaves, &reachable, &means, features)
        }
    };
    Ok(Tree {
        nodes,
        leaves: leaves.into_iter().map(|v| v.unwrap_or(0.0)).collect(),
        depth,
        paths,
        contributions,
    })
}

type TreeArrays = (Vec<i32>, Vec<i32>, Vec<u32>, Vec<String>, Vec<u8>);

#[pyclass(frozen)]
pub struct Forest {
    margin: f32,
    features: usize,
    trees: Vec<Tree>,
    with_means: bool,
}

/// The leaf each of (up to `TREES`) trees takes `row` to, their walks made together.
fn leaves_of<const DENSE: bool>(trees: &[Tree], row: &[ReadOnlyCell<f32>]) -> [u32; TREES] {
    let mut at = [0u32; TREES];
    let depth = trees.iter().map(|t| t.depth).max().unwrap_or(0);
    for _ in 0..depth {
        // a walk at its leaf stays there (`Node::leaf`)
        for (at, tree) in at.iter_mut().zip(trees) {
            *at = tree.step::<DENSE>(*at, row);
        }
    }
    at
}

/// Whether `values` hold no NaN (a missing value), so that the walks may take
/// `Node::next`'s dense step.
fn dense(values: &[ReadOnlyCell<f32>]) -> bool {
    !values.iter().any(|v| v.get().is_nan())
}

impl Forest {
    /// One row's margin, its trees walked `TREES` at a time (their walks are independent, so
    /// the processor overlaps them, as it overlaps rows' in `add_leaves`), each tree's leaf
    /// added in the trees' order, as `add_leaves` adds them.
    fn margin_of<const DENSE: bool>(&self, row: &[ReadOnlyCell<f32>]) -> f32 {
        let mut margin = self.margin;
        for trees in self.trees.chunks(TREES) {
            for (&at, tree) in leaves_of::<DENSE>(trees, row).iter().zip(trees) {
                margin += tree.leaves[at as usize];
            }
        }
        margin
    }

    /// `x` as rows `features` wide (a C-contiguous float32 matrix), else ValueError.
    fn rows<'a>(&self, py: Python<'a>, x: &'a PyBuffer<f32>) -> PyResult<&'a [ReadOnlyCell<f32>]> {
        let slice = match x.shape() {
            [_, width] if *width == self.features && x.is_c_contiguous() => x.as_slice(py),
            _ => None,
        };
        slice.ok_or_else(|| {
            PyValueError::new_err(format!(
                "x must be a C-contiguous float32 matrix {} wide",
                self.features
            ))
        })
    }
}

#[pymethods]
impl Forest {
    /// `base_score` as XGBoost writes it (a probability), `features` the row width, `trees`
    /// each tree's `left_children`, `right_children`, `split_indices`, `split_conditions` (as
    /// written: parsed here straight to float32) and `default_left`; `sum_hessians`, each
    /// tree's `sum_hessian` (as written), for `contributions`. ValueError for anything it
    /// cannot read.
    #[new]
    #[pyo3(signature = (base_score, features, trees, sum_hessians=None))]
    fn new(
        base_score: &str,
        features: usize,
        trees: Vec<TreeArrays>,
        sum_hessians: Option<Vec<Vec<String>>>,
    ) -> PyResult<Self> {
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
        if sum_hessians
            .as_ref()
            .is_some_and(|h| h.len() != trees.len())
        {
            return Err(PyValueError::new_err(
                "sum_hessians must hold one list a tree",
            ));
        }
        let trees = trees
            .iter()
            .enumerate()
            .map(|(i, (l, r, f, c, d))| {
                let hessians = sum_hessians.as_ref().map(|h| h[i].as_slice());
                tree_of(features, l, r, f, c, d, hessians)
                    .map_err(|e| PyValueError::new_err(format!("tree {i}, {e}")))
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Forest {
            margin: prob_to_margin(score),
            features,
            trees,
            with_means: sum_hessians.is_some(),
        })
    }

    /// Fills `out` (float32, C-contiguous, rows x `features + 1`, the last column the bias)
    /// with the Saabas contributions of the rows of `x` (a C-contiguous float32 matrix
    /// `features` wide). ValueError, before `out` is written, when the forest was made without
    /// `sum_hessians` or a row holds ±inf (XGBoost refuses those). It keeps the GIL (as
    /// `predict`).
    fn contributions(&self, py: Python<'_>, x: PyBuffer<f32>, out: PyBuffer<f32>) -> PyResult<()> {
        if !self.with_means {
            return Err(PyValueError::new_err(
                "a forest made without sum_hessians gives no contributions",
            ));
        }
        let x = self.rows(py, &x)?;
        let (width, columns) = (self.features, self.features + 1);
        let rows = x.len() / width;
        if out.shape() != [rows, columns] || out.readonly() || !out.is_c_contiguous() {
            return Err(PyValueError::new_err(format!(
                "out must be a writable C-contiguous float32 matrix, one row of {columns} a row"
            )));
        }
        if x.iter().any(|v| v.get().is_infinite()) {
            return Err(PyValueError::new_err(
                "x holds an infinity, which XGBoost refuses",
            ));
        }
        let Some(out) = out.as_mut_slice(py) else {
            return Err(PyValueError::new_err("out must be contiguous"));
        };
        for (row, out) in x.chunks_exact(width).zip(out.chunks_exact(columns)) {
            let mut contribs = vec![0.0f32; columns];
            let dense = dense(row);
            for trees in self.trees.chunks(TREES) {
                let leaves = if dense {
                    leaves_of::<true>(trees, row)
                } else {
                    leaves_of::<false>(trees, row)
                };
                // XGBoost adds every column of a tree's vector; the others are +0.0, and a sum
                // that starts at +0.0 is never -0.0, so adding +0.0 changes none of them: only
                // the columns the vector has are added
                for (&leaf, tree) in leaves.iter().zip(trees) {
                    let (start, len) = tree.paths[leaf as usize];
                    for &(j, value) in &tree.contributions[start as usize..(start + len) as usize] {
                        contribs[j as usize] += value;
                    }
                }
            }
            contribs[width] += self.margin;
            for (cell, &value) in out.iter().zip(&contribs) {
                cell.set(value);
            }
        }
        Ok(())
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
            let dense = dense(rows);
            if out.len() < FEW {
                for (row, p) in rows.chunks_exact(width).zip(out) {
                    p.set(sigmoid(if dense {
                        self.margin_of::<true>(row)
                    } else {
                        self.margin_of::<false>(row)
                    }));
                }
                continue;
            }
            let mut margins = [self.margin; BLOCK];
            if out.len() == BLOCK {
                let mut block: [&[ReadOnlyCell<f32>]; BLOCK] = [&[]; BLOCK];
                for (slot, row) in block.iter_mut().zip(rows.chunks_exact(width)) {
                    *slot = row;
                }
                for tree in &self.trees {
                    if dense {
                        tree.add_block_leaves::<true>(&block, &mut margins);
                    } else {
                        tree.add_block_leaves::<false>(&block, &mut margins);
                    }
                }
            } else {
                let margins = &mut margins[..out.len()];
                for tree in &self.trees {
                    if dense {
                        tree.add_leaves::<true>(rows, width, margins);
                    } else {
                        tree.add_leaves::<false>(rows, width, margins);
                    }
                }
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
