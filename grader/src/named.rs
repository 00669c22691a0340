//! Named answers: `(k, n) = (2, 4)` and `k = 2, n = 4` give each value a name. Against another
//! named answer with the same names the values are compared name by name; against an unnamed
//! tuple, vector or list they are compared in the names' order, so a wrong order is wrong.
//!
//! The names' order is the tuple's in `(k, n) = (2, 4)`. In a list of equations it is
//! alphabetical when every name is a single Latin letter (x before y, a before b: how
//! coordinates and unknowns are ordered by convention, so `y = -1, x = 3` is `(3, -1)`), else
//! as written (`r = 3, \theta = \frac{\pi}{2}`). A list whose names share a letter
//! (`x = 1, x = -2`, `x_1 = 2, x_2 = 3`) lists roots, which have no order: it is not named.

use crate::answer::Answer;
use crate::expr::Expr;

/// Values with their names, in the names' order.
struct Named<'a> {
    names: Vec<&'a str>,
    values: Vec<&'a Answer>,
    /// The brackets the values were written in: a named tuple's own, `( )` for a list.
    open: char,
    close: char,
}

/// Compares `p` with `g` when either is a named answer; None leaves the pair to the other
/// rules. `eq` is the caller's comparison of two items.
pub fn compare_named(p: &Answer, g: &Answer, eq: &mut dyn FnMut(&Answer, &Answer) -> bool) -> Option<bool> {
    match (named(p), named(g)) {
        (Some(a), Some(b)) => by_name(&a, &b, eq),
        (Some(a), None) => in_order(&a, g, eq),
        (None, Some(b)) => in_order(&b, p, &mut |x, y| eq(y, x)),
        (None, None) => None,
    }
}

fn named(a: &Answer) -> Option<Named<'_>> {
    match a {
        Answer::Eq(sides) => match sides.as_slice() {
            [Answer::Seq { items: names, open: '(', close: ')' }, Answer::Seq { items: values, open, close }]
                if names.len() == values.len() =>
            {
                Some(Named {
                    names: names.iter().map(name_key).collect::<Option<_>>()?,
                    values: values.iter().collect(),
                    open: *open,
                    close: *close,
                })
            }
            _ => None,
        },
        Answer::Set(items) if items.len() >= 2 => named_list(items),
        _ => None,
    }
}

/// `k = 2, n = 4`: every item an equation with a name on the left; distinct letters.
fn named_list(items: &[Answer]) -> Option<Named<'_>> {
    let mut pairs: Vec<(&str, &Answer, &Answer)> = Vec::with_capacity(items.len());
    for item in items {
        let Answer::Eq(sides) = item else {
            return None;
        };
        let (Some(name), Some(value)) = (sides.first(), sides.last()) else {
            return None;
        };
        if sides.len() < 2 {
            return None;
        }
        pairs.push((name_key(name)?, name, value));
    }
    let mut letters: Vec<&str> = pairs.iter().map(|(_, n, _)| letter_of(n)).collect();
    letters.sort_unstable();
    letters.dedup();
    if letters.len() != pairs.len() {
        return None;
    }
    if pairs.iter().all(|(_, n, _)| single_letter(n)) {
        pairs.sort_by(|a, b| a.0.cmp(b.0));
    }
    Some(Named {
        names: pairs.iter().map(|(k, _, _)| *k).collect(),
        values: pairs.iter().map(|(_, _, v)| *v).collect(),
        open: '(',
        close: ')',
    })
}

/// Values matched by name, when both answers use the same names.
fn by_name(a: &Named, b: &Named, eq: &mut dyn FnMut(&Answer, &Answer) -> bool) -> Option<bool> {
    if a.names.len() != b.names.len() || sorted_names(a) != sorted_names(b) {
        return None;
    }
    Some(a.names.iter().zip(&a.values).all(|(name, x)| {
        let at = b.names.iter().position(|m| m == name);
        at.and_then(|i| b.values.get(i)).is_some_and(|y| eq(x, y))
    }))
}

fn sorted_names<'a>(n: &Named<'a>) -> Vec<&'a str> {
    let mut names = n.names.clone();
    names.sort_unstable();
    names
}

/// The named values in order against an unnamed tuple, vector or list.
fn in_order(n: &Named, other: &Answer, eq: &mut dyn FnMut(&Answer, &Answer) -> bool) -> Option<bool> {
    match other {
        Answer::Seq { .. } | Answer::Matrix(_) => {
            let seq = Answer::Seq { open: n.open, close: n.close, items: n.values.iter().map(|v| (*v).clone()).collect() };
            Some(eq(&seq, other))
        }
        Answer::Set(items) if !items.iter().any(|i| matches!(i, Answer::Eq(_))) => {
            Some(items.len() == n.values.len() && n.values.iter().zip(items).all(|(x, y)| eq(x, y)))
        }
        _ => None,
    }
}

/// The name's canonical spelling, if the answer is a name (`x`, `f(n)`, `\angle BEA_1`).
fn name_key(a: &Answer) -> Option<&str> {
    match a {
        Answer::Scalar(s) if s.expr.is_name_like() => Some(&s.sig.canonical),
        _ => None,
    }
}

/// `x_1` → `x`; other names are their own letter.
fn letter_of(a: &Answer) -> &str {
    match a {
        Answer::Scalar(s) => match &s.expr {
            Expr::Var(v) => v.split(['_', '\'']).next().unwrap_or(v),
            _ => &s.sig.canonical,
        },
        _ => "",
    }
}

fn single_letter(a: &Answer) -> bool {
    matches!(a, Answer::Scalar(s) if matches!(&s.expr, Expr::Var(v) if v.len() == 1 && v.bytes().all(|b| b.is_ascii_alphabetic())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::parse_answer;

    fn names(s: &str) -> Option<Vec<String>> {
        let a = parse_answer(s);
        named(&a).map(|n| n.names.iter().map(|k| k.replace('`', "")).collect())
    }

    #[test]
    fn which_answers_are_named() {
        assert_eq!(names("(k, n) = (2, 4)"), Some(vec!["k".into(), "n".into()]));
        assert_eq!(names("n = 4, k = 2"), Some(vec!["k".into(), "n".into()]));
        assert_eq!(names("r = 3, \\theta = \\frac{\\pi}{2}"), Some(vec!["r".into(), "\\theta".into()]));
        assert_eq!(names("x = 1, x = -2"), None);
        assert_eq!(names("x_1 = 2, x_2 = 3"), None);
        assert_eq!(names("x = 3"), None);
        assert_eq!(names("(1, 2) = (2, 4)"), None);
        assert_eq!(names("2x = 4, y = 1"), None);
    }
}
