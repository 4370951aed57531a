//! A ruleset view's `when` and `score` expressions as one native program
//! (`processors.rules.program`), evaluated over a batch's feature columns in one call.
//!
//! Each rule is a short stack program over whole columns: features, constants, and "leaves"
//! (boolean columns the caller computed: the parts of an expression that read texts, lists or
//! IP ranges). Every value carries, per row, whether evaluating it on that row alone would
//! need numpy's own answer ("deferred"): arithmetic on a value that is not finite, a division
//! by zero, `min`/`max`/`ramp` of a value that is not finite, a leaf the caller could not
//! compute. `and` / `or` pass a deferral on only from the parts a row alone would evaluate
//! (they stop early), `a if c else b` from all three (both sides are computed). The caller
//! evaluates a deferred (row, rule) the vectorised way, which gives its result or its error
//! as always. Otherwise the arithmetic is IEEE doubles, as numpy's on finite values.

use pyo3::buffer::{PyBuffer, ReadOnlyCell};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

#[derive(Clone, Copy, Debug)]
enum Op {
    Feature(usize),
    Const(f64),
    Leaf(usize),
    Add,
    Sub,
    Mul,
    Div,
    Neg,
    Compare(Cmp),
    Not,
    And,
    Or,
    Select,
    Min(usize),
    Max(usize),
    Abs,
    Ramp,
    Missing(f64),
    /// `Feature(j)`, `Const(c)` and `Compare(cmp)` in one: no defer.
    Compared(usize, f64, Cmp),
}

#[derive(Clone, Copy, Debug)]
enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Cmp {
    /// The comparison with its operands swapped: `a op b` is `b op.swapped() a`.
    fn swapped(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            same => same,
        }
    }

}

/// `ops` with each feature compared with a constant as one `Compared` (the same answers:
/// `c <= x` is `x >= c` for every double, NaN too).
fn fused(ops: Vec<Op>) -> Vec<Op> {
    let mut out: Vec<Op> = Vec::with_capacity(ops.len());
    for op in ops {
        let tail = out.len().checked_sub(2).map(|i| (out[i], out[i + 1]));
        let compared = match (tail, op) {
            (Some((Op::Feature(j), Op::Const(c))), Op::Compare(cmp)) => Some(Op::Compared(j, c, cmp)),
            (Some((Op::Const(c), Op::Feature(j))), Op::Compare(cmp)) => Some(Op::Compared(j, c, cmp.swapped())),
            _ => None,
        };
        match compared {
            Some(fused) => {
                out.truncate(out.len() - 2);
                out.push(fused);
            }
            None => out.push(op),
        }
    }
    out
}

/// A column on the stack: each row's value (booleans as 0.0 / 1.0) and deferral.
#[derive(Clone, Default)]
struct Column {
    value: Vec<f64>,
    defer: Vec<bool>,
    clean: bool, // no row deferred (`defer` is then not kept)
}

impl Column {
    /// Whether row `r` is deferred.
    fn deferred(&self, r: usize) -> bool {
        !self.clean && self.defer[r]
    }

    /// Each row's deferral, kept from now on.
    fn defers(&mut self) -> &mut [bool] {
        if self.clean {
            self.defer.clear();
            self.defer.resize(self.value.len(), false);
            self.clean = false;
        }
        &mut self.defer
    }
}

struct Code {
    ops: Vec<Op>,
    depth: usize,
}

/// A rule's score: computed by its code, a constant (already clipped), or none the program
/// can compute (every row that fires is deferred).
enum Score {
    Code(Code),
    Constant(f64),
    Deferred,
}

/// A rule: when it fires, its score, and the numbers and booleans its reason shows.
struct Rule {
    when: Code,
    score: Score,
    fields: Vec<Code>,
}

#[pyclass(module = "processors._native", frozen)]
pub struct RuleProgram {
    features: usize,
    leaves: usize,
    rules: Vec<Rule>,
}

fn parse_code(ops: &Bound<'_, PyList>, features: usize, leaves: usize) -> PyResult<Code> {
    let bad = |what: String| PyValueError::new_err(format!("bad rule program: {what}"));
    let mut out = Vec::with_capacity(ops.len());
    let (mut height, mut depth) = (0usize, 0usize);
    for item in ops.iter() {
        let item = item.downcast::<PyTuple>()?;
        let name: String = item.get_item(0)?.extract()?;
        let index = |limit: usize| -> PyResult<usize> {
            let i: usize = item.get_item(1)?.extract()?;
            if i < limit {
                Ok(i)
            } else {
                Err(bad(format!("{name} {i} out of range")))
            }
        };
        let (op, pops, pushes) = match name.as_str() {
            "feature" => (Op::Feature(index(features)?), 0, 1),
            "const" => (Op::Const(item.get_item(1)?.extract()?), 0, 1),
            "leaf" => (Op::Leaf(index(leaves)?), 0, 1),
            "add" => (Op::Add, 2, 1),
            "sub" => (Op::Sub, 2, 1),
            "mul" => (Op::Mul, 2, 1),
            "div" => (Op::Div, 2, 1),
            "neg" => (Op::Neg, 1, 1),
            "lt" => (Op::Compare(Cmp::Lt), 2, 1),
            "le" => (Op::Compare(Cmp::Le), 2, 1),
            "gt" => (Op::Compare(Cmp::Gt), 2, 1),
            "ge" => (Op::Compare(Cmp::Ge), 2, 1),
            "eq" => (Op::Compare(Cmp::Eq), 2, 1),
            "ne" => (Op::Compare(Cmp::Ne), 2, 1),
            "not" => (Op::Not, 1, 1),
            "and" => (Op::And, 2, 1),
            "or" => (Op::Or, 2, 1),
            "select" => (Op::Select, 3, 1),
            "min" | "max" => {
                let n: usize = item.get_item(1)?.extract()?;
                if n < 1 {
                    return Err(bad(format!("{name} of no values")));
                }
                (if name == "min" { Op::Min(n) } else { Op::Max(n) }, n, 1)
            }
            "abs" => (Op::Abs, 1, 1),
            "ramp" => (Op::Ramp, 2, 1),
            "missing" => (Op::Missing(item.get_item(1)?.extract()?), 1, 1),
            _ => return Err(bad(format!("unknown operation {name:?}"))),
        };
        if height < pops {
            return Err(bad(format!("{name} needs {pops} values, has {height}")));
        }
        height = height - pops + pushes;
        depth = depth.max(height);
        out.push(op);
    }
    if height != 1 {
        return Err(bad(format!("a program leaves {height} values, not 1")));
    }
    Ok(Code { ops: fused(out), depth })
}

fn finite(a: f64) -> bool {
    a.is_finite()
}

/// What numpy's `minimum` / `maximum` give for two finite values (the second when equal:
/// `minimum(0.0, -0.0)` is -0.0).
fn minimum(a: f64, b: f64) -> f64 {
    if a < b {
        a
    } else {
        b
    }
}

fn maximum(a: f64, b: f64) -> f64 {
    if a > b {
        a
    } else {
        b
    }
}

/// `functions.ramp` of finite values, as numpy computes it.
fn ramp(value: f64, limit: f64) -> f64 {
    let rising = minimum(1.0, 0.5 + 0.5 * (value - limit) / if limit > 0.0 { limit } else { 1.0 });
    if limit > 0.0 {
        rising
    } else {
        1.0
    }
}

fn truth(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The inputs of one evaluation: the batch's feature columns and leaves, and the rows.
struct Inputs<'a> {
    columns: &'a [ReadOnlyCell<f64>],
    leaves: &'a [ReadOnlyCell<u8>],
    width: usize,
    rows: &'a [usize],
    all: bool, // `rows` are every row, in order
}

impl Code {
    /// The code over `inputs.rows`, into `stack` (at least `depth` columns); the result is
    /// `stack[0]`.
    fn run(&self, inputs: &Inputs<'_>, stack: &mut [Column]) {
        let n = inputs.rows.len();
        let mut sp = 0usize;
        for op in &self.ops {
            match *op {
                Op::Feature(j) => {
                    let column = &inputs.columns[j * inputs.width..(j + 1) * inputs.width];
                    let top = &mut stack[sp];
                    top.value.clear();
                    if inputs.all {
                        top.value.extend(column.iter().map(|c| c.get()));
                    } else {
                        top.value.extend(inputs.rows.iter().map(|&i| column[i].get()));
                    }
                    top.clean = true;
                    sp += 1;
                }
                Op::Compared(j, c, cmp) => {
                    let column = &inputs.columns[j * inputs.width..(j + 1) * inputs.width];
                    let top = &mut stack[sp];
                    top.value.clear();
                    match cmp {
                        Cmp::Lt => gathered(&mut top.value, column, inputs, |x| x < c),
                        Cmp::Le => gathered(&mut top.value, column, inputs, |x| x <= c),
                        Cmp::Gt => gathered(&mut top.value, column, inputs, |x| x > c),
                        Cmp::Ge => gathered(&mut top.value, column, inputs, |x| x >= c),
                        Cmp::Eq => gathered(&mut top.value, column, inputs, |x| x == c),
                        Cmp::Ne => gathered(&mut top.value, column, inputs, |x| x != c),
                    }
                    top.clean = true;
                    sp += 1;
                }
                Op::Const(c) => {
                    let top = &mut stack[sp];
                    top.value.clear();
                    top.value.resize(n, c);
                    top.clean = true;
                    sp += 1;
                }
                Op::Leaf(k) => {
                    let leaf = &inputs.leaves[k * inputs.width..(k + 1) * inputs.width];
                    let top = &mut stack[sp];
                    top.value.clear();
                    top.value.extend(inputs.rows.iter().map(|&i| truth(leaf[i].get() == 1)));
                    top.defer.clear();
                    top.defer.extend(inputs.rows.iter().map(|&i| leaf[i].get() > 1));
                    top.clean = !top.defer.contains(&true);
                    sp += 1;
                }
                Op::Neg => unary(&mut stack[sp - 1], |a| -1.0 * a),
                Op::Not => unary(&mut stack[sp - 1], |a| truth(a == 0.0)),
                Op::Abs => unary(&mut stack[sp - 1], f64::abs),
                Op::Missing(m) => unary(&mut stack[sp - 1], |a| truth(a == m || a.is_nan())),
                Op::Min(k) | Op::Max(k) => {
                    let take = if matches!(op, Op::Min(_)) { minimum } else { maximum };
                    let (base, rest) = stack[sp - k..sp].split_at_mut(1);
                    let acc = &mut base[0];
                    acc.defers();
                    for row in 0..n {
                        let mut ok = finite(acc.value[row]);
                        for other in rest.iter() {
                            ok &= finite(other.value[row]);
                            acc.defer[row] |= other.deferred(row);
                        }
                        if !ok {
                            acc.defer[row] = true;
                            continue;
                        }
                        for other in rest.iter() {
                            acc.value[row] = take(acc.value[row], other.value[row]);
                        }
                    }
                    sp -= k - 1;
                }
                Op::Select => {
                    let (head, tail) = stack[sp - 3..sp].split_at_mut(1);
                    let (cond, (yes, no)) = (&mut head[0], tail.split_at(1));
                    let (yes, no) = (&yes[0], &no[0]);
                    cond.defers();
                    for row in 0..n {
                        cond.defer[row] |= yes.deferred(row) || no.deferred(row);
                        cond.value[row] = if cond.value[row] != 0.0 { yes.value[row] } else { no.value[row] };
                    }
                    sp -= 2;
                }
                Op::And | Op::Or => {
                    let and = matches!(op, Op::And);
                    let (head, tail) = stack[sp - 2..sp].split_at_mut(1);
                    let (a, b) = (&mut head[0], &tail[0]);
                    // the right side is evaluated (on the row alone) only when the left one
                    // does not decide; a deferred left side stays deferred
                    let decide = |x: f64, y: f64| truth(if (x != 0.0) == and { y != 0.0 } else { !and });
                    if b.clean {
                        values_only(a, b, decide);
                    } else {
                        a.defers();
                        let (values, defers) = (&mut a.value[..n], &mut a.defer[..n]);
                        let (others, deferred) = (&b.value[..n], &b.defer[..n]);
                        for r in 0..n {
                            defers[r] |= ((values[r] != 0.0) == and) & deferred[r];
                            values[r] = decide(values[r], others[r]);
                        }
                    }
                    sp -= 1;
                }
                _ => {
                    let (head, tail) = stack[sp - 2..sp].split_at_mut(1);
                    binary(*op, &mut head[0], &tail[0]);
                    sp -= 1;
                }
            }
        }
        debug_assert_eq!(sp, 1);
    }
}

/// The truth of `test` of the feature `column` at the rows, into `out`.
#[inline(always)]
fn gathered(out: &mut Vec<f64>, column: &[ReadOnlyCell<f64>], inputs: &Inputs<'_>, test: impl Fn(f64) -> bool) {
    if inputs.all {
        out.extend(column.iter().map(|x| truth(test(x.get()))));
    } else {
        out.extend(inputs.rows.iter().map(|&i| truth(test(column[i].get()))));
    }
}

fn unary(top: &mut Column, f: impl Fn(f64) -> f64) {
    for value in top.value.iter_mut() {
        *value = f(*value);
    }
}

fn binary(op: Op, a: &mut Column, b: &Column) {
    let both = |x: f64, y: f64| x.is_finite() & y.is_finite();
    match op {
        Op::Add => each(a, b, |x, y| (x + y, !both(x, y))),
        Op::Sub => each(a, b, |x, y| (x - y, !both(x, y))),
        Op::Mul => each(a, b, |x, y| (x * y, !both(x, y))),
        Op::Div => each(a, b, |x, y| (x / y, !both(x, y) | (y == 0.0))),
        Op::Ramp => each(a, b, |x, y| (ramp(x, y), !both(x, y))),
        Op::Compare(Cmp::Lt) => compared(a, b, |x, y| x < y),
        Op::Compare(Cmp::Le) => compared(a, b, |x, y| x <= y),
        Op::Compare(Cmp::Gt) => compared(a, b, |x, y| x > y),
        Op::Compare(Cmp::Ge) => compared(a, b, |x, y| x >= y),
        Op::Compare(Cmp::Eq) => compared(a, b, |x, y| x == y),
        Op::Compare(Cmp::Ne) => compared(a, b, |x, y| x != y),
        _ => unreachable!("not a binary operation"),
    }
}

/// `f` of each row's two values into `a` (a value deferred where `f` says so, or where
/// either operand was); one loop per operation, so that it is a plain loop over slices.
#[inline(always)]
fn each(a: &mut Column, b: &Column, f: impl Fn(f64, f64) -> (f64, bool)) {
    let n = a.value.len();
    a.defers();
    let (values, defers) = (&mut a.value[..n], &mut a.defer[..n]);
    let others = &b.value[..n];
    for i in 0..n {
        let (value, defer) = f(values[i], others[i]);
        values[i] = value;
        defers[i] = defers[i] | b.deferred(i) | defer;
    }
}

/// A comparison of each row's two values into `a` (never deferred itself).
#[inline(always)]
fn compared(a: &mut Column, b: &Column, f: impl Fn(f64, f64) -> bool) {
    if b.clean {
        values_only(a, b, |x, y| truth(f(x, y)));
    } else {
        each(a, b, |x, y| (truth(f(x, y)), false));
    }
}

/// `f` of each row's two values into `a`, its deferrals as they are (`b` has none).
#[inline(always)]
fn values_only(a: &mut Column, b: &Column, f: impl Fn(f64, f64) -> f64) {
    let n = a.value.len();
    let (values, others) = (&mut a.value[..n], &b.value[..n]);
    for i in 0..n {
        values[i] = f(values[i], others[i]);
    }
}

/// `RuleProgram.run`'s answer: rows, scores, starts, values, unexplained and deferred rules.
type Outcome = (Vec<usize>, Vec<f64>, Vec<Span>, Vec<f64>, Vec<usize>, Vec<usize>);

/// A rule with hits: (its index, its first and past-last hit, its first field value).
type Span = (usize, usize, usize, usize);

/// `stack` with at least `depth` columns.
fn grown(stack: &mut Vec<Column>, depth: usize) -> &mut [Column] {
    if stack.len() < depth {
        stack.resize(depth, Column::default());
    }
    stack
}

impl Rule {
    /// The rows where `fired` (this rule's `when`) is true or deferred, into `out`, with
    /// their scores and fields (computed over the rows on `stack`).
    fn hits(&self, k: usize, inputs: &Inputs<'_>, fired: &Column, stack: &mut Vec<Column>,
            out: &mut Outcome) {
        let n = inputs.rows.len();
        let (start, offset) = (out.0.len(), out.3.len());
        let score: Option<Column> = match &self.score {
            Score::Code(code) => {
                code.run(inputs, grown(stack, code.depth));
                Some(stack[0].clone())
            }
            _ => None,
        };
        let mut fields = Vec::with_capacity(self.fields.len());
        for code in &self.fields {
            code.run(inputs, grown(stack, code.depth));
            fields.push(stack[0].clone());
        }
        let (mut unexplained, mut deferred) = (false, false);
        for (r, &row) in inputs.rows.iter().enumerate().take(n) {
            if !fired.deferred(r) && fired.value[r] == 0.0 {
                continue;
            }
            let value = match (&self.score, &score) {
                _ if fired.deferred(r) => f64::NAN,
                (Score::Constant(c), _) => *c,
                (_, Some(s)) if !s.deferred(r) => clip(s.value[r]),
                _ => f64::NAN,
            };
            deferred |= value.is_nan();
            out.0.push(row);
            out.1.push(value);
            for field in &fields {
                out.3.push(field.value[r]);
                unexplained |= field.deferred(r) && !value.is_nan();
            }
        }
        out.2.push((k, start, out.0.len(), offset));
        if unexplained {
            out.4.push(k);
        }
        if deferred {
            out.5.push(k);
        }
    }
}

/// A score as the engine keeps it: clipped to [0, 1] (-0.0 kept), NaN as 0.
fn clip(score: f64) -> f64 {
    if score.is_nan() || score < 0.0 {
        0.0
    } else if score > 1.0 {
        1.0
    } else {
        score
    }
}

#[pymethods]
impl RuleProgram {
    /// `rules`: per rule `(when, score, fields)`, `when` a list of operations (tuples such as
    /// `("feature", 3)`, `("const", 1.0)`, `("leaf", 0)`, `("ge",)`), `score` a list of
    /// operations, a float (a constant score, clipped) or None (deferred wherever the rule
    /// fires), `fields` lists of operations (the values its reason shows). ValueError for a
    /// program that is not well formed.
    #[new]
    fn new(features: usize, leaves: usize, rules: &Bound<'_, PyList>) -> PyResult<Self> {
        let mut out = Vec::with_capacity(rules.len());
        for rule in rules.iter() {
            let (when, score, fields): (Bound<'_, PyList>, Bound<'_, PyAny>, Vec<Bound<'_, PyList>>) =
                rule.extract()?;
            let when = parse_code(&when, features, leaves)?;
            let score = if score.is_none() {
                Score::Deferred
            } else if let Ok(ops) = score.downcast::<PyList>() {
                Score::Code(parse_code(ops, features, leaves)?)
            } else {
                Score::Constant(score.extract()?)
            };
            let fields = fields.iter().map(|f| parse_code(f, features, leaves)).collect::<PyResult<_>>()?;
            out.push(Rule { when, score, fields });
        }
        Ok(RuleProgram { features, leaves, rules: out })
    }

    /// Every rule over `rows` of the batch (indices; None: every row): `columns`, the
    /// features as a C-contiguous float64 matrix, one row a feature, one column a purchase;
    /// `leaves`, a C-contiguous uint8 matrix, one row a leaf (0 false, 1 true, 2 deferred).
    /// Gives `(rows, scores, spans, values, unexplained, deferred)`: for each rule `k` that
    /// fired or was deferred on some row, in order, a span `(k, start, end, offset)`: its rows
    /// are `rows[start:end]` (in the order of `rows`), with their clipped scores, NaN for a
    /// deferred one, and from `values[offset]` on, for each of those rows in turn, its
    /// fields (booleans as 0.0 / 1.0); `unexplained`, the rules with a field deferred on a
    /// row that fired; `deferred`, the rules with a row deferred.
    #[pyo3(signature = (columns, leaves, rows=None))]
    fn run(
        &self,
        py: Python<'_>,
        columns: PyBuffer<f64>,
        leaves: PyBuffer<u8>,
        rows: Option<Vec<usize>>,
    ) -> PyResult<Outcome> {
        let width = match columns.shape() {
            [f, n] if *f == self.features && columns.is_c_contiguous() => *n,
            _ => return Err(PyValueError::new_err("columns must be a C-contiguous float64 matrix, one row a feature")),
        };
        match leaves.shape() {
            [l, n] if *l == self.leaves && *n == width && leaves.is_c_contiguous() => {}
            _ => return Err(PyValueError::new_err("leaves must be a C-contiguous uint8 matrix, one row a leaf, as wide as columns")),
        }
        let all = rows.is_none();
        let rows = rows.unwrap_or_else(|| (0..width).collect());
        if rows.iter().any(|&i| i >= width) {
            return Err(PyValueError::new_err("a row index is out of range"));
        }
        let (Some(columns), Some(leaves)) = (columns.as_slice(py), leaves.as_slice(py)) else {
            return Err(PyValueError::new_err("columns and leaves must be contiguous"));
        };
        let inputs = Inputs { columns, leaves, width, rows: &rows, all };
        let mut out = Outcome::default();
        let (mut stack, mut other) = (Vec::new(), Vec::new());
        for (k, rule) in self.rules.iter().enumerate() {
            rule.when.run(&inputs, grown(&mut stack, rule.when.depth));
            let fired = &stack[0];
            if (0..rows.len()).any(|r| fired.deferred(r) || fired.value[r] != 0.0) {
                rule.hits(k, &inputs, fired, &mut other, &mut out);
            }
        }
        Ok(out)
    }

    /// The number of rules.
    fn __len__(&self) -> usize {
        self.rules.len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<crate::leaves::TextLeaves>()?;
    m.add_class::<RuleProgram>()
}
