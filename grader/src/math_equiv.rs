//! Math equivalence: is a predicted [`Answer`] the gold one?
//!
//! - Scalars: same tree, else equal values at seeded points (real points in [0.5, 3); integer
//!   points in [2, 12] when floor/ceil/factorial/binomial appear or reals give too few finite
//!   values). Tolerance and exact-integer rule: [`crate::eval::close`]. A `%` on one
//!   side also accepts value/100 (`50%` = `0.5`); `^\circ` is ignored (`30^\circ` = `30`).
//! - Sets and unions: same size and a perfect matching of equal items (order-insensitive).
//! - Tuples and intervals: same brackets, items equal in order; a `(…)` tuple also equals a
//!   one-column or one-row matrix.
//! - Equations: parts pairwise equal, or `lhs − rhs` proportional (`2x = 4` = `x = 2`); two
//!   that solve for the same name (`x = 3.2e-10`, `x = 2.3e-10`) compare their right sides only.
//!   An equation states its last side when it starts with a name (`x = 3`, `f(x) = 2x`,
//!   `\angle A = 180^\circ - 50^\circ = 130^\circ`) or holds no variable (`2 + 3 = 5`): it
//!   equals that side, or the exact side before a decimal that rounds it
//!   (`x = \frac{5}{9} \approx 0.56` states both), and a chain compares as its first and last
//!   sides.
//! - Named answers (`(k, n) = (2, 4)`, `k = 2, n = 4`): see [`crate::named`].
//! - Inequalities in one variable equal the interval they describe (`-2 \le x \le 7` =
//!   `[-2, 7]`, `x < -5 \text{ or } x > 3` = `(-\infty, -5) \cup (3, \infty)`): see
//!   [`crate::interval`].
//! - Text: equal keys; a textual gold also equals a scalar with the same key (`B` = `\text{(B)}`).
//! - `NaN` or non-finite values are never equal to anything.
//! - Work is metered ([`MAX_COMPARE_FUEL`] item comparisons per answer); a comparison that
//!   runs out of fuel is "not equal". Scalars compare in O(points) through their
//!   [`crate::signature::Signature`] (values cached per scalar).

use crate::answer::{Answer, Scalar};
use crate::eval::{close, is_rounding_of};
use crate::interval::{relation_interval, relations_union};
use crate::limits::{MAX_COMPARE_FUEL, MAX_ITEMS, MAX_STRUCT_DEPTH, MIN_COMPARABLE_POINTS, N_POINTS};
use crate::named::compare_named;

/// Whether `pred` states the same answer as `gold`.
pub fn equivalent(pred: &Answer, gold: &Answer) -> bool {
    eq(pred, gold, 0, &mut Fuel(MAX_COMPARE_FUEL))
}

/// Item comparisons still allowed.
struct Fuel(usize);

impl Fuel {
    fn spend(&mut self, n: usize) -> bool {
        match self.0.checked_sub(n) {
            Some(left) => {
                self.0 = left;
                true
            }
            None => {
                self.0 = 0;
                false
            }
        }
    }
}

fn eq(p: &Answer, g: &Answer, depth: usize, fuel: &mut Fuel) -> bool {
    if depth > MAX_STRUCT_DEPTH || !fuel.spend(1) {
        return false;
    }
    let d = depth + 1;
    if let Some(verdict) = compare_named(p, g, &mut |x, y| eq(x, y, d, fuel)) {
        return verdict;
    }
    match (p, g) {
        (Answer::Scalar(a), Answer::Scalar(b)) => scalars_equal(a, b),
        (_, Answer::Text(gk)) => !gk.is_empty() && p.text_key() == Some(gk.as_str()),
        (Answer::Text(_), _) => false,
        (Answer::Set(a), Answer::Set(b)) | (Answer::Union(a), Answer::Union(b)) => matching(a, b, d, fuel),
        (Answer::Seq { open: o1, close: c1, items: a }, Answer::Seq { open: o2, close: c2, items: b }) => {
            o1 == o2 && c1 == c2 && pairwise(a, b, d, fuel)
        }
        (Answer::Matrix(a), Answer::Matrix(b)) => a.len() == b.len() && a.iter().zip(b).all(|(r, s)| pairwise(r, s, d, fuel)),
        (Answer::Seq { open: '(', close: ')', items }, Answer::Matrix(m))
        | (Answer::Matrix(m), Answer::Seq { open: '(', close: ')', items }) => vector_equal(items, m, d, fuel),
        (Answer::Eq(a), Answer::Eq(b)) => equations_equal(a, b, d, fuel),
        (Answer::Eq(parts), other) | (other, Answer::Eq(parts)) => match stated_side(parts) {
            Some(side) if !matches!(other, Answer::Set(_)) => {
                eq(side, other, d, fuel) || rounded_side(parts).is_some_and(|exact| eq(exact, other, d, fuel))
            }
            _ => false,
        },
        (Answer::Rel { parts: a, ops: oa }, Answer::Rel { parts: b, ops: ob }) => {
            let mirrored = oa.len() == ob.len() && oa.iter().zip(ob.iter().rev()).all(|(x, y)| *x == y.flipped());
            (oa == ob && pairwise(a, b, d, fuel))
                || (mirrored && a.len() == b.len() && a.iter().zip(b.iter().rev()).all(|(x, y)| eq(x, y, d, fuel)))
        }
        (Answer::Rel { parts, ops }, Answer::Seq { .. } | Answer::Union(_)) => {
            relation_interval(parts, ops).is_some_and(|i| eq(&i, g, d, fuel))
        }
        (Answer::Seq { .. } | Answer::Union(_), Answer::Rel { parts, ops }) => {
            relation_interval(parts, ops).is_some_and(|i| eq(p, &i, d, fuel))
        }
        (Answer::Set(items), Answer::Union(_)) => relations_union(items).is_some_and(|u| eq(&u, g, d, fuel)),
        (Answer::Union(_), Answer::Set(items)) => relations_union(items).is_some_and(|u| eq(p, &u, d, fuel)),
        _ => false,
    }
}

/// The side an equation states as its answer: the last, when the first is a name or no side
/// holds a variable; None for `x^2 - 1 = 0`.
fn stated_side(parts: &[Answer]) -> Option<&Answer> {
    let (first, last) = (parts.first()?, parts.last()?);
    let constant = |a: &Answer| matches!(a, Answer::Scalar(s) if !s.sig.has_vars());
    (parts.len() >= 2 && (name_like(first) || parts.iter().all(constant))).then_some(last)
}

/// The exact side before a last side that only rounds it (`x = \frac{5}{9} \approx 0.56`,
/// `2\sqrt{2} = 2.83`): such an equation states both. The last side must be a decimal
/// literal and the one before it a constant expression, not a literal.
fn rounded_side(parts: &[Answer]) -> Option<&Answer> {
    let [.., Answer::Scalar(exact), Answer::Scalar(shown)] = parts else {
        return None;
    };
    let shown = shown.expr.as_literal().filter(|v| v.fract() != 0.0)?;
    if exact.sig.has_vars() || exact.expr.as_literal().is_some() {
        return None;
    }
    let value = exact.sig.values(&exact.expr, false)[0];
    let at = parts.len().checked_sub(2)?;
    is_rounding_of(shown, value).then(|| parts.get(at)).flatten()
}

/// First and last side; a chain keeps both ends only when it starts with a name.
fn two_sides(parts: &[Answer]) -> Option<(&Answer, &Answer)> {
    match parts {
        [l, r] => Some((l, r)),
        [l, .., r] if name_like(l) => Some((l, r)),
        _ => None,
    }
}

fn same_name(a: &Answer, b: &Answer) -> bool {
    match (a, b) {
        (Answer::Scalar(x), Answer::Scalar(y)) => x.sig.canonical == y.sig.canonical,
        (Answer::Text(x), Answer::Text(y)) => x == y,
        _ => false,
    }
}

fn name_like(a: &Answer) -> bool {
    match a {
        Answer::Scalar(s) => s.expr.is_name_like(),
        Answer::Text(_) => true,
        _ => false,
    }
}

fn pairwise(a: &[Answer], b: &[Answer], depth: usize, fuel: &mut Fuel) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| eq(x, y, depth, fuel))
}

fn vector_equal(items: &[Answer], m: &[Vec<Answer>], depth: usize, fuel: &mut Fuel) -> bool {
    let column: Option<Vec<&Answer>> = m
        .iter()
        .map(|row| match row.as_slice() {
            [x] => Some(x),
            _ => None,
        })
        .collect();
    match (column, m) {
        (Some(col), _) if col.len() == items.len() => items.iter().zip(col).all(|(x, y)| eq(x, y, depth, fuel)),
        (_, [row]) => pairwise(items, row, depth, fuel),
        _ => false,
    }
}

/// Perfect matching of equal items (Kuhn's algorithm on at most MAX_ITEMS² pairs).
fn matching(a: &[Answer], b: &[Answer], depth: usize, fuel: &mut Fuel) -> bool {
    if a.len() != b.len() || a.len() > MAX_ITEMS {
        return false;
    }
    let mut edges: Vec<Vec<usize>> = Vec::with_capacity(a.len());
    for x in a {
        let row: Vec<usize> = (0..b.len()).filter(|&j| b.get(j).is_some_and(|y| eq(x, y, depth, fuel))).collect();
        if row.is_empty() {
            return false; // no partner: no need to compare the rest
        }
        edges.push(row);
    }
    let mut owner: Vec<Option<usize>> = vec![None; b.len()];
    for i in 0..a.len() {
        let mut seen = vec![false; b.len()];
        if !augment(i, &edges, &mut owner, &mut seen) {
            return false;
        }
    }
    true
}

/// Recursion depth is at most the number of items (≤ MAX_ITEMS).
fn augment(i: usize, edges: &[Vec<usize>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for &j in edges.get(i).map_or(&[][..], |v| v.as_slice()) {
        if seen.get(j).copied().unwrap_or(true) {
            continue;
        }
        seen[j] = true;
        let free = match owner[j] {
            None => true,
            Some(k) => augment(k, edges, owner, seen),
        };
        if free {
            owner[j] = Some(i);
            return true;
        }
    }
    false
}

fn equations_equal(a: &[Answer], b: &[Answer], depth: usize, fuel: &mut Fuel) -> bool {
    if pairwise(a, b, depth, fuel) {
        return true;
    }
    let (Some((l1, r1)), Some((l2, r2))) = (two_sides(a), two_sides(b)) else {
        return false;
    };
    if name_like(l1) && same_name(l1, l2) {
        // Both solved for one name: compare the values, which a ratio near 1 would blur
        // (x = 3.2e-10 against x = 2.3e-10).
        return eq(r1, r2, depth, fuel);
    }
    match (l1, r1, l2, r2) {
        (Answer::Scalar(l1), Answer::Scalar(r1), Answer::Scalar(l2), Answer::Scalar(r2)) => proportional([l1, r1], [l2, r2]),
        _ => false,
    }
}

/// Whether l1 − r1 = c·(l2 − r2) for one constant c at every sampled point (c ≠ 0 unless
/// both differences vanish everywhere).
fn proportional(a: [&Scalar; 2], b: [&Scalar; 2]) -> bool {
    let all = [a[0], a[1], b[0], b[1]];
    if all.iter().any(|s| s.sig.nan) {
        return false;
    }
    let integers = all.iter().any(|s| s.sig.integers);
    let has_vars = all.iter().any(|s| s.sig.has_vars());
    let n = if has_vars { N_POINTS } else { 1 };
    let [va, ra, vb, rb] = all.map(|s| s.sig.values(&s.expr, integers));
    let mut ratio: Option<f64> = None;
    let mut comparable = 0;
    for i in 0..n {
        let (x, y) = (va[i] - ra[i], vb[i] - rb[i]);
        match (x.is_finite(), y.is_finite()) {
            (false, false) => continue,
            (true, true) => {}
            _ => return false,
        }
        let (zx, zy) = (close(x, 0.0), close(y, 0.0));
        if zx != zy {
            return false;
        }
        if !zx {
            let r = x / y;
            match ratio {
                None => ratio = Some(r),
                Some(r0) if !close(r, r0) => return false,
                Some(_) => {}
            }
        }
        comparable += 1;
    }
    comparable >= if has_vars { MIN_COMPARABLE_POINTS } else { 1 }
}

fn scalars_equal(p: &Scalar, g: &Scalar) -> bool {
    let (ps, gs) = (&p.sig, &g.sig);
    if ps.nan || gs.nan {
        return false;
    }
    if ps.canonical == gs.canonical {
        return true;
    }
    let integers = ps.integers || gs.integers;
    let has_vars = ps.has_vars() || gs.has_vars();
    match sampled_equal(p, g, has_vars, integers) {
        Some(verdict) => verdict,
        None if !integers && has_vars => sampled_equal(p, g, has_vars, true) == Some(true),
        None => false,
    }
}

/// Some(verdict) once enough points are finite on both sides; None if too few are.
fn sampled_equal(p: &Scalar, g: &Scalar, has_vars: bool, integers: bool) -> Option<bool> {
    let (n, need) = if has_vars { (N_POINTS, MIN_COMPARABLE_POINTS) } else { (1, 1) };
    let (pv, gv) = (p.sig.values(&p.expr, integers), g.sig.values(&g.expr, integers));
    let mut comparable = 0;
    for (&a, &b) in pv.iter().zip(gv).take(n) {
        match (a.is_finite(), b.is_finite()) {
            (false, false) => continue,
            (true, true) => {}
            _ => return Some(false),
        }
        let percent_ok = (p.percent && !g.percent && close(a / 100.0, b)) || (g.percent && !p.percent && close(a * 100.0, b));
        if !close(a, b) && !percent_ok {
            return Some(false);
        }
        comparable += 1;
    }
    (comparable >= need).then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::parse_answer;

    fn same(a: &str, b: &str) -> bool {
        equivalent(&parse_answer(a), &parse_answer(b))
    }

    #[test]
    fn symbolic() {
        assert!(same("x^2+2x+1", "(x+1)^2"));
        assert!(same("\\frac{x+1}{2}", "\\frac{1}{2}x + \\frac12"));
        assert!(!same("x^2+2x", "(x+1)^2"));
        assert!(same("\\lfloor n/2 \\rfloor", "\\lfloor \\frac{n}{2} \\rfloor"));
    }

    #[test]
    fn structures() {
        assert!(same("\\{1,2\\}", "\\{2,1\\}"));
        assert!(!same("(1,2)", "(2,1)"));
        assert!(!same("(1,2]", "[1,2]"));
        assert!(same("2x = 4", "x = 2"));
        assert!(same("x = 3", "3"));
        assert!(same("k > 2", "2 < k"));
        assert!(!same("5x - 7y + 11z + 4 = 0", "5x - 7y + 11z + 4"));
    }

    #[test]
    fn percent_and_degrees() {
        assert!(same("50\\%", "0.5"));
        assert!(same("0.5", "50\\%"));
        assert!(same("50", "50\\%"));
        assert!(!same("5000", "50\\%"));
        assert!(same("30", "30^\\circ"));
    }

    #[test]
    fn nan_never_equal() {
        assert!(!same("NaN", "NaN"));
        assert!(!same("nan", "0"));
    }
}
