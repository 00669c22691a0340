//! Intervals from inequalities: a relation in one bare variable → the interval it describes,
//! so that `-2 \le x \le 7` meets `[-2, 7]`, `k < -5` meets `(-\infty, -5)` and `x \ne 3`
//! meets `(-\infty, 3) \cup (3, \infty)`. Strict ends are open, `\le`/`\ge` ends closed.

use crate::answer::{Answer, RelOp, Scalar};
use crate::expr::{Constant, Expr};
use crate::signature::Signature;

/// The interval (or union of two, for `\ne`) that `parts`/`ops` describe, when exactly one
/// part is a bare variable that no other part mentions; None for anything else
/// (`x + y > 2`, `a < b < c` with several variables, `x < 2 < 3`).
pub fn relation_interval(parts: &[Answer], ops: &[RelOp]) -> Option<Answer> {
    use RelOp::*;
    match (parts, ops) {
        ([a, b], [op]) => match (bare_var(a), bare_var(b)) {
            (Some(v), _) if !mentions(b, v) => one_sided(*op, b),
            (_, Some(v)) if !mentions(a, v) => one_sided(op.flipped(), a),
            _ => None,
        },
        ([lo, x, hi], [o1, o2]) => {
            let v = bare_var(x)?;
            if mentions(lo, v) || mentions(hi, v) {
                return None;
            }
            match (o1, o2) {
                (Lt | Le, Lt | Le) => Some(interval(lo, *o1 == Le, hi, *o2 == Le)),
                (Gt | Ge, Gt | Ge) => Some(interval(hi, *o2 == Ge, lo, *o1 == Ge)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A list of relations (`x < -5 \text{ or } x > 3`) as the union of their intervals.
pub fn relations_union(items: &[Answer]) -> Option<Answer> {
    let mut pieces = Vec::with_capacity(items.len());
    for item in items {
        let Answer::Rel { parts, ops } = item else {
            return None;
        };
        match relation_interval(parts, ops)? {
            Answer::Union(two) => pieces.extend(two),
            one => pieces.push(one),
        }
    }
    Some(Answer::Union(pieces))
}

/// `x op c`.
fn one_sided(op: RelOp, c: &Answer) -> Option<Answer> {
    let (below, above) = (infinity(true), infinity(false));
    Some(match op {
        RelOp::Lt => interval(&below, false, c, false),
        RelOp::Le => interval(&below, false, c, true),
        RelOp::Gt => interval(c, false, &above, false),
        RelOp::Ge => interval(c, true, &above, false),
        RelOp::Ne => Answer::Union(vec![interval(&below, false, c, false), interval(c, false, &above, false)]),
    })
}

fn interval(lo: &Answer, lo_closed: bool, hi: &Answer, hi_closed: bool) -> Answer {
    Answer::Seq { open: if lo_closed { '[' } else { '(' }, close: if hi_closed { ']' } else { ')' }, items: vec![lo.clone(), hi.clone()] }
}

/// `-\infty` or `\infty`, built as the parser builds them so that their trees compare equal.
fn infinity(negative: bool) -> Answer {
    let inf = Expr::Const(Constant::Infinity);
    let expr = if negative { Expr::Neg(Box::new(inf)) } else { inf };
    Answer::Scalar(Box::new(Scalar { sig: Signature::of(&expr), expr, percent: false, degree: false, key: "infty".into() }))
}

fn bare_var(a: &Answer) -> Option<&str> {
    match a {
        Answer::Scalar(s) => match &s.expr {
            Expr::Var(name) => Some(name),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `a` mentions variable `v`; what is not a scalar counts as mentioning it.
fn mentions(a: &Answer, v: &str) -> bool {
    match a {
        Answer::Scalar(s) => s.sig.vars.iter().any(|x| x == v),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::parse_answer;

    fn interval_of(s: &str) -> Option<Answer> {
        match parse_answer(s) {
            Answer::Rel { parts, ops } => relation_interval(&parts, &ops),
            _ => None,
        }
    }

    fn brackets(a: &Answer) -> Option<(char, char)> {
        match a {
            Answer::Seq { open, close, .. } => Some((*open, *close)),
            _ => None,
        }
    }

    #[test]
    fn ends_follow_the_operators() {
        let b = |s| interval_of(s).as_ref().and_then(brackets);
        assert_eq!(b("-2 \\le x \\le 7"), Some(('[', ']')));
        assert_eq!(b("-2 < x \\le 7"), Some(('(', ']')));
        assert_eq!(b("7 > x \\ge -2"), Some(('[', ')')));
        assert_eq!(b("k < -5"), Some(('(', ')')));
        assert_eq!(b("x \\ge 3"), Some(('[', ')')));
        assert_eq!(b("3 \\ge x"), Some(('(', ']')));
        assert!(matches!(interval_of("x \\ne 3"), Some(Answer::Union(v)) if v.len() == 2));
    }

    #[test]
    fn only_one_bare_variable() {
        assert_eq!(interval_of("x + y > 2"), None);
        assert_eq!(interval_of("x < x + 1"), None);
        assert_eq!(interval_of("1 < x > 2"), None);
        assert_eq!(interval_of("1 < 2 < 3"), None);
    }
}
