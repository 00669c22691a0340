//! Expression tree: what the LaTeX parser builds and the evaluator walks.
//!
//! Sums and products are n-ary so that `1+1+…+1` is one wide node, not a deep chain:
//! the tree's depth is bounded by [`crate::limits::MAX_DEPTH`] however long the input.

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Const(Constant),
    /// A free variable: `x`, `x_0`, `\omega_n`, `y'`, and opaque atoms such as `204_5`.
    Var(String),
    /// Terms with their sign: `(negated, term)`.
    Sum(Vec<(bool, Expr)>),
    /// Factors with their side: `(divides, factor)`.
    Product(Vec<(bool, Expr)>),
    Neg(Box<Expr>),
    Pow(Box<Expr>, Box<Expr>),
    Func(Func, Box<Expr>),
    /// `\sqrt[index]{radicand}`.
    Root(Box<Expr>, Box<Expr>),
    /// `\log_{base} arg`.
    Log(Box<Expr>, Box<Expr>),
    Binom(Box<Expr>, Box<Expr>),
    Factorial(Box<Expr>),
    /// An unknown function applied to one argument: `f(x)`, `u(t)`, `I(0)`.
    Call(String, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constant {
    Pi,
    E,
    Infinity,
    /// A `NaN` literal: never equal to anything.
    NaN,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Cot,
    Sec,
    Csc,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Ln,
    Exp,
    Sqrt,
    Abs,
    Floor,
    Ceil,
}

impl Func {
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "sin" => Func::Sin,
            "cos" => Func::Cos,
            "tan" | "tg" => Func::Tan,
            "cot" | "ctg" => Func::Cot,
            "sec" => Func::Sec,
            "csc" => Func::Csc,
            "arcsin" => Func::Asin,
            "arccos" => Func::Acos,
            "arctan" => Func::Atan,
            "sinh" => Func::Sinh,
            "cosh" => Func::Cosh,
            "tanh" => Func::Tanh,
            "ln" => Func::Ln,
            "exp" => Func::Exp,
            _ => return None,
        })
    }

    /// Functions that only make sense on integers; their presence makes the comparison
    /// sample integer points.
    pub fn is_integer_valued(self) -> bool {
        matches!(self, Func::Floor | Func::Ceil)
    }
}

impl Expr {
    /// Visits every node, parents first; the tree is shallow (see the module doc).
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Num(_) | Expr::Const(_) | Expr::Var(_) => {}
            Expr::Sum(items) | Expr::Product(items) => items.iter().for_each(|(_, e)| e.walk(f)),
            Expr::Neg(a) | Expr::Func(_, a) | Expr::Factorial(a) | Expr::Call(_, a) => a.walk(f),
            Expr::Pow(a, b) | Expr::Root(a, b) | Expr::Log(a, b) | Expr::Binom(a, b) => {
                a.walk(f);
                b.walk(f);
            }
        }
    }

    /// Adds the names of the free variables to `out`, which ends sorted without repeats.
    pub fn free_vars(&self, out: &mut Vec<String>) {
        self.walk(&mut |e| {
            if let Expr::Var(v) = e {
                out.push(v.clone());
            }
        });
        out.sort();
        out.dedup();
    }

    /// Whether floor, ceil, factorial or binomial appear: such answers are compared at integers.
    pub fn wants_integers(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| {
            found |= matches!(e, Expr::Factorial(_) | Expr::Binom(..)) || matches!(e, Expr::Func(f, _) if f.is_integer_valued());
        });
        found
    }

    pub fn has_nan(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| found |= matches!(e, Expr::Const(Constant::NaN)));
        found
    }

    /// A plain literal, as written: integers like `72` compare exactly.
    pub fn as_literal(&self) -> Option<f64> {
        match self {
            Expr::Num(v) => Some(*v),
            Expr::Neg(a) => a.as_literal().map(|v| -v),
            _ => None,
        }
    }

    /// A name-like left-hand side (`x`, `f(x)`, `m_{\max}`, `\angle ABC`, `dM/dt`): an
    /// equation with one may be compared by its right-hand side alone.
    pub fn is_name_like(&self) -> bool {
        match self {
            Expr::Var(_) | Expr::Call(..) => true,
            Expr::Product(items) => items.iter().all(|(_, e)| e.is_name_like()),
            _ => false,
        }
    }

    /// A canonical spelling for structural equality (same tree ⇒ same string).
    pub fn canonical(&self) -> String {
        let mut s = String::new();
        self.write_canonical(&mut s);
        s
    }

    fn write_canonical(&self, s: &mut String) {
        match self {
            Expr::Num(v) => s.push_str(&format!("{v}")),
            Expr::Const(c) => s.push_str(&format!("{c:?}")),
            Expr::Var(v) => {
                s.push('`');
                s.push_str(v);
                s.push('`');
            }
            Expr::Sum(items) | Expr::Product(items) => {
                let (plus, minus) = if matches!(self, Expr::Sum(_)) { ('+', '-') } else { ('*', '/') };
                s.push('(');
                for (inv, e) in items {
                    s.push(if *inv { minus } else { plus });
                    e.write_canonical(s);
                }
                s.push(')');
            }
            Expr::Neg(a) => {
                s.push_str("neg(");
                a.write_canonical(s);
                s.push(')');
            }
            Expr::Func(f, a) => {
                s.push_str(&format!("{f:?}("));
                a.write_canonical(s);
                s.push(')');
            }
            Expr::Factorial(a) => {
                s.push_str("fact(");
                a.write_canonical(s);
                s.push(')');
            }
            Expr::Call(name, a) => {
                s.push_str(&format!("call`{name}`("));
                a.write_canonical(s);
                s.push(')');
            }
            Expr::Pow(a, b) | Expr::Root(a, b) | Expr::Log(a, b) | Expr::Binom(a, b) => {
                let tag = match self {
                    Expr::Pow(..) => "pow",
                    Expr::Root(..) => "root",
                    Expr::Log(..) => "log",
                    _ => "binom",
                };
                s.push_str(tag);
                s.push('(');
                a.write_canonical(s);
                s.push(',');
                b.write_canonical(s);
                s.push(')');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_vars_sorted_unique() {
        let e = Expr::Sum(vec![
            (false, Expr::Var("y".into())),
            (true, Expr::Product(vec![(false, Expr::Var("x".into())), (true, Expr::Var("y".into()))])),
        ]);
        let mut v = Vec::new();
        e.free_vars(&mut v);
        assert_eq!(v, vec!["x".to_string(), "y".to_string()]);
    }

    #[test]
    fn canonical_distinguishes_sum_and_product() {
        let a = Expr::Sum(vec![(false, Expr::Num(1.0)), (false, Expr::Num(2.0))]);
        let b = Expr::Product(vec![(false, Expr::Num(1.0)), (false, Expr::Num(2.0))]);
        assert_ne!(a.canonical(), b.canonical());
    }
}
