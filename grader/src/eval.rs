//! Evaluator: [`Expr`] at a point → f64, plus the seeded points and the tolerance rule.
//!
//! Everything is plain f64: `2^999999` is `inf` in O(1) and non-finite values are "not
//! comparable", never equal. Unknown functions (`f(x)`) are fixed pseudo-random smooth
//! functions of their argument, the same on both sides of a comparison.

use crate::expr::{Constant, Expr, Func};
use crate::limits::{ABS_TOL, REL_TOL};

/// One of the seeded points: every variable's value there is a fixed function of its name
/// and the point's index ([`var_value`]), so no environment is built or searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub index: usize,
    /// Integers in [2, 12] instead of reals in [0.5, 3).
    pub integers: bool,
}

pub fn eval(e: &Expr, at: &Point) -> f64 {
    match e {
        Expr::Num(v) => *v,
        Expr::Const(Constant::Pi) => std::f64::consts::PI,
        Expr::Const(Constant::E) => std::f64::consts::E,
        Expr::Const(Constant::Infinity) => f64::INFINITY,
        Expr::Const(Constant::NaN) => f64::NAN,
        Expr::Var(name) => var_value(name, at),
        Expr::Sum(terms) => terms.iter().map(|(neg, t)| if *neg { -eval(t, at) } else { eval(t, at) }).sum(),
        Expr::Product(factors) => factors.iter().fold(1.0, |acc, (div, f)| {
            let v = eval(f, at);
            if *div {
                acc / v
            } else {
                acc * v
            }
        }),
        Expr::Neg(a) => -eval(a, at),
        Expr::Pow(a, b) => pow(eval(a, at), eval(b, at)),
        Expr::Func(f, a) => func(*f, eval(a, at)),
        Expr::Root(n, a) => root(eval(n, at), eval(a, at)),
        Expr::Log(b, a) => eval(a, at).ln() / eval(b, at).ln(),
        Expr::Binom(n, k) => binom(eval(n, at), eval(k, at)),
        Expr::Factorial(a) => factorial(eval(a, at)),
        Expr::Call(name, a) => unknown_function(name, eval(a, at)),
    }
}

fn pow(b: f64, e: f64) -> f64 {
    // A negative base with an odd-denominator exponent (cube roots) is real.
    if b < 0.0 && e.fract() != 0.0 {
        let inv = 1.0 / e;
        if inv.fract() == 0.0 && inv.abs() % 2.0 == 1.0 {
            return -(-b).powf(e);
        }
    }
    b.powf(e)
}

fn root(n: f64, a: f64) -> f64 {
    if n.fract() == 0.0 && n.abs() % 2.0 == 1.0 && a < 0.0 {
        return -(-a).powf(1.0 / n);
    }
    a.powf(1.0 / n)
}

fn func(f: Func, x: f64) -> f64 {
    match f {
        Func::Sin => x.sin(),
        Func::Cos => x.cos(),
        Func::Tan => x.tan(),
        Func::Cot => 1.0 / x.tan(),
        Func::Sec => 1.0 / x.cos(),
        Func::Csc => 1.0 / x.sin(),
        Func::Asin => x.asin(),
        Func::Acos => x.acos(),
        Func::Atan => x.atan(),
        Func::Sinh => x.sinh(),
        Func::Cosh => x.cosh(),
        Func::Tanh => x.tanh(),
        Func::Ln => x.ln(),
        Func::Exp => x.exp(),
        Func::Sqrt => x.sqrt(),
        Func::Abs => x.abs(),
        Func::Floor => x.floor(),
        Func::Ceil => x.ceil(),
    }
}

/// n! for integers 0..=170 (171! overflows f64); anything else is NaN.
fn factorial(n: f64) -> f64 {
    if !(0.0..=170.0).contains(&n) || n.fract() != 0.0 {
        return f64::NAN;
    }
    (2..=n as u32).fold(1.0, |acc, k| acc * f64::from(k))
}

/// C(n, k) for integer 0 ≤ k ≤ 1000 (any real n); otherwise NaN. Bounded loop.
fn binom(n: f64, k: f64) -> f64 {
    if !(0.0..=1000.0).contains(&k) || k.fract() != 0.0 || !n.is_finite() {
        return f64::NAN;
    }
    if n.fract() == 0.0 && n >= 0.0 && k > n {
        return 0.0;
    }
    (0..k as u32).fold(1.0, |acc, i| acc * (n - f64::from(i)) / f64::from(i + 1))
}

fn unknown_function(name: &str, x: f64) -> f64 {
    let h = hash_str(name);
    let a = 0.5 + unit(h);
    let b = 3.0 * unit(h.rotate_left(21));
    (a * x + b).sin() * 2.0 + 3.0 + a * x
}

/// Tolerant equality; see [`crate::limits::REL_TOL`]. Non-finite is never equal.
pub fn close(a: f64, b: f64) -> bool {
    if !a.is_finite() || !b.is_finite() {
        return false;
    }
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if a.fract() == 0.0 && b.fract() == 0.0 && a.abs() < EXACT && b.abs() < EXACT {
        return a == b;
    }
    // Against an exact zero only an absolute bound makes sense (`\sin\pi` is 1.2e-16); any
    // other pair is compared relatively, so 3.2e-10 and 2.3e-10 stay apart.
    if a == 0.0 || b == 0.0 {
        return (a - b).abs() <= ABS_TOL;
    }
    (a - b).abs() <= REL_TOL * a.abs().max(b.abs())
}

/// Whether `shown` is `exact` rounded to 2 to 15 significant figures (`0.33` of 1/3, `2.83`
/// of 2√2, `1.05e-34` of ħ); one figure is too coarse to tell a rounding from a slip.
pub fn is_rounding_of(shown: f64, exact: f64) -> bool {
    if !shown.is_finite() || !exact.is_finite() || shown == 0.0 || exact == 0.0 {
        return false;
    }
    let magnitude = exact.abs().log10().floor() as i32;
    (2..=15).any(|figures| {
        let scale = 10f64.powi(figures - 1 - magnitude);
        let rounded = (exact * scale).round() / scale;
        (rounded - shown).abs() <= 1e-9 * shown.abs()
    })
}

/// The value of variable `name` at point `at`: reals in [0.5, 3) or integers in [2, 12],
/// seeded by the name, so both sides of a comparison see the same value.
pub fn var_value(name: &str, at: &Point) -> f64 {
    let salt = (at.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let r = unit(splitmix(hash_str(name) ^ salt));
    if at.integers {
        2.0 + (r * 11.0).floor()
    } else {
        0.5 + 2.5 * r
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, then mixed: a fixed hash, unlike std's randomly seeded one.
fn hash_str(s: &str) -> u64 {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    splitmix(h)
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::lex;
    use crate::parse_expr::parse_expr;

    fn v(s: &str) -> f64 {
        let e = parse_expr(&lex(s)).expect("parses");
        eval(&e, &Point { index: 0, integers: false })
    }

    #[test]
    fn arithmetic() {
        assert!(close(v("2\\sqrt{2}"), v("\\sqrt{8}")));
        assert!(close(v("\\frac{1}{2}"), 0.5));
        assert!(close(v("\\sqrt[3]{-8}"), -2.0));
        assert!(close(v("\\binom{6}{2}"), 15.0));
        assert!(close(v("5!"), 120.0));
        assert!(close(v("\\log_{2} 8"), 3.0));
        assert!(close(v("4.5e33"), v("4.5 \\times 10^{33}")));
    }

    #[test]
    fn tolerance_rule() {
        assert!(!close(109_200_000.0, 109_200_001.0));
        assert!(!close(0.333, 1.0 / 3.0));
        assert!(close(0.333_333_333, 1.0 / 3.0));
        assert!(!close(f64::NAN, f64::NAN));
        assert!(!close(f64::INFINITY, f64::INFINITY));
        // Small scientific values: a digit swap or a factor of ten is a different answer.
        assert!(!close(3.2e-10, 2.3e-10));
        assert!(!close(3.2e-10, 3.2e-11));
        assert!(close(3.2e-10, 3.200_000_1e-10));
        assert!(close(9.109e-31, 9.109e-31 * (1.0 + 1e-9)));
        // Exact zero against rounding noise.
        assert!(close(0.0, 1.2e-16));
        assert!(close(-0.0, 1e-12));
        assert!(!close(0.0, 3.2e-10));
    }

    #[test]
    fn roundings() {
        assert!(is_rounding_of(0.33, 1.0 / 3.0));
        assert!(is_rounding_of(2.83, 8f64.sqrt()));
        assert!(is_rounding_of(1.05e-34, 1.054_571_8e-34));
        assert!(is_rounding_of(0.5556, 5.0 / 9.0));
        assert!(!is_rounding_of(0.55, 5.0 / 9.0));
        assert!(!is_rounding_of(100.0, 130.0), "one figure");
        assert!(!is_rounding_of(120.0, 130.0));
        assert!(!is_rounding_of(0.0, 1e-20));
    }

    #[test]
    fn huge_exponents_are_not_finite() {
        assert!(!v("2^{999999}").is_finite());
        assert!(!v("171!").is_finite());
    }

    #[test]
    fn points_are_deterministic() {
        let at = |index, integers| Point { index, integers };
        assert_eq!(var_value("x", &at(3, false)), var_value("x", &at(3, false)));
        assert_ne!(var_value("x", &at(3, false)), var_value("y", &at(3, false)));
        assert_ne!(var_value("x", &at(3, false)), var_value("x", &at(4, false)));
        assert!((0..8).all(|i| (2.0..=12.0).contains(&var_value("n", &at(i, true)))));
        assert!((0..8).all(|i| (0.5..3.0).contains(&var_value("n", &at(i, false)))));
    }
}
