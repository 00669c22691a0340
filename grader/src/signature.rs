//! Signature: what a comparison needs of an expression, computed once when it is parsed.
//!
//! A variable's value at point i depends only on its name and i (see
//! [`crate::eval::var_value`]), so an expression's values at the seeded points can be
//! computed alone and compared with any other expression's later: a list of 64 items costs
//! 64 evaluations per side, not 64².

use std::sync::OnceLock;

use crate::eval::{eval, Point};
use crate::expr::Expr;
use crate::limits::N_POINTS;

#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// Same string ⇔ same tree.
    pub canonical: String,
    /// Sorted free variables.
    pub vars: Vec<String>,
    /// Floor, ceil, factorial or binomial appear: compare at integer points.
    pub integers: bool,
    /// A `NaN` literal appears: never equal.
    pub nan: bool,
    /// Values at the real and at the integer points, each computed on first use (most
    /// comparisons need only one of the two, and many need neither).
    real: OnceLock<[f64; N_POINTS]>,
    ints: OnceLock<[f64; N_POINTS]>,
}

impl Signature {
    pub fn of(e: &Expr) -> Signature {
        let mut vars = Vec::new();
        e.free_vars(&mut vars);
        Signature {
            canonical: e.canonical(),
            vars,
            integers: e.wants_integers(),
            nan: e.has_nan(),
            real: OnceLock::new(),
            ints: OnceLock::new(),
        }
    }

    pub fn has_vars(&self) -> bool {
        !self.vars.is_empty()
    }

    /// Values of `e` (the expression this signature was made of) at the seeded points.
    pub fn values(&self, e: &Expr, integers: bool) -> &[f64; N_POINTS] {
        let cell = if integers { &self.ints } else { &self.real };
        cell.get_or_init(|| {
            if self.vars.is_empty() {
                return [eval(e, &Point { index: 0, integers }); N_POINTS];
            }
            std::array::from_fn(|index| eval(e, &Point { index, integers }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::lex;
    use crate::parse_expr::parse_expr;

    fn sig(s: &str) -> (Signature, Expr) {
        let e = parse_expr(&lex(s)).expect("parses");
        (Signature::of(&e), e)
    }

    #[test]
    fn values_do_not_depend_on_the_other_side() {
        let ((a, ea), (b, eb)) = (sig("x + y"), sig("y + x"));
        assert_ne!(a.canonical, b.canonical);
        assert_eq!(a.values(&ea, false), b.values(&eb, false));
        assert_eq!(a.values(&ea, true), b.values(&eb, true));
        assert!(sig("\\lfloor n \\rfloor").0.integers);
        assert!(!sig("2").0.has_vars());
        assert!(sig("NaN").0.nan);
    }
}
