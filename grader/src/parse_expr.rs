//! Expression parser: tokens → [`Expr`], recursive descent with a hard depth cap.
//!
//! Grammar (loosest first): sum → product → unary → power → postfix → atom. Products take
//! explicit `* \cdot \times / \div` and implicit juxtaposition (`2\sqrt{2}`, `(x+1)(x-1)`).
//! LaTeX argument rules: `\frac12` takes one character per argument; exponents take a whole
//! number (`2^10` is read as the writer meant, 2^{10}). `137\frac{1}{2}` is a mixed number.
//! `f(x)` with no space and a single-token argument is a call of an unknown function; `n(n+1)`
//! is a product.

use crate::expr::{Constant, Expr, Func};
use crate::lexer::{Kind, Tok};
use crate::limits::{MAX_DEPTH, MAX_POSTFIX};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("unexpected token {found} at {at}")]
    Unexpected { found: String, at: usize },
    #[error("input ended early")]
    UnexpectedEnd,
    #[error("unparsed tokens from {at}")]
    Trailing { at: usize },
}

/// Parses the whole token slice as one expression.
pub fn parse_expr(toks: &[Tok]) -> Result<Expr, ParseError> {
    if toks.is_empty() {
        return Err(ParseError::UnexpectedEnd);
    }
    let mut p = Parser { toks: spell_out_words(toks), pos: 0, depth: 0 };
    let e = p.sum()?;
    if p.pos < p.toks.len() {
        return Err(ParseError::Trailing { at: p.pos });
    }
    Ok(e)
}

/// Commands that are operators or closers, never the start of a factor.
const NON_ATOM_CMDS: &[&str] = &[
    "cdot",
    "times",
    "div",
    "pm",
    "mp",
    "le",
    "ge",
    "lt",
    "gt",
    "ne",
    "approx",
    "in",
    "notin",
    "cup",
    "cap",
    "setminus",
    "to",
    "rightarrow",
    "Rightarrow",
    "implies",
    "iff",
    "rfloor",
    "rceil",
    "dots",
    "and",
    "or",
    "equiv",
    "sim",
    "simeq",
    "cong",
    "propto",
    "subset",
    "subseteq",
    "mod",
    "bmod",
    "pmod",
    "colon",
    "vdots",
    "ddots",
];
const ACCENT_CMDS: &[&str] = &[
    "hat",
    "bar",
    "vec",
    "dot",
    "ddot",
    "tilde",
    "overline",
    "underline",
    "widehat",
    "widetilde",
    "overrightarrow",
    "overleftarrow",
    "mathbb",
    "mathcal",
    "mathfrak",
    "mathscr",
];
const FUNCTION_CMDS: &[&str] = &[
    "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "ln", "log", "lg", "exp", "tg", "ctg",
];

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Kind> {
        self.toks.get(self.pos).map(|t| &t.kind)
    }

    fn peek_at(&self, off: usize) -> Option<&Tok> {
        self.toks.get(self.pos + off)
    }

    fn next(&mut self) -> Result<Kind, ParseError> {
        let t = self.toks.get(self.pos).ok_or(ParseError::UnexpectedEnd)?;
        self.pos += 1;
        Ok(t.kind.clone())
    }

    fn unexpected(&self) -> ParseError {
        match self.toks.get(self.pos) {
            Some(t) => ParseError::Unexpected { found: format!("{:?}", t.kind), at: self.pos },
            None => ParseError::UnexpectedEnd,
        }
    }

    fn expect(&mut self, want: &Kind) -> Result<(), ParseError> {
        if self.peek() == Some(want) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::TooDeep);
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn sum(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let mut terms = Vec::new();
        let mut neg = self.signs();
        terms.push((neg, self.product()?));
        while matches!(self.peek(), Some(Kind::Sym('+' | '-'))) {
            neg = self.signs();
            terms.push((neg, self.product()?));
        }
        self.leave();
        Ok(match terms.len() {
            1 => match terms.pop() {
                Some((false, e)) => e,
                Some((true, e)) => Expr::Neg(Box::new(e)),
                None => return Err(ParseError::UnexpectedEnd),
            },
            _ => Expr::Sum(terms),
        })
    }

    /// Consumes a run of `+`/`-`; returns whether it negates.
    fn signs(&mut self) -> bool {
        let mut neg = false;
        while let Some(Kind::Sym(c @ ('+' | '-'))) = self.peek() {
            neg ^= *c == '-';
            self.pos += 1;
        }
        neg
    }

    fn product(&mut self) -> Result<Expr, ParseError> {
        let mut factors = vec![(false, self.unary()?)];
        loop {
            match self.peek() {
                Some(Kind::Sym('*')) | Some(Kind::Cmd(_)) if self.at_times() => {
                    self.pos += 1;
                    factors.push((false, self.unary()?));
                }
                Some(Kind::Sym('/')) => {
                    self.pos += 1;
                    factors.push((true, self.unary()?));
                }
                Some(Kind::Cmd(c)) if c == "div" => {
                    self.pos += 1;
                    factors.push((true, self.unary()?));
                }
                Some(k) if starts_atom(k) => {
                    let prev_is_num = matches!(factors.last(), Some((_, Expr::Num(_))));
                    if prev_is_num && matches!(k, Kind::Num(_)) {
                        return Err(self.unexpected());
                    }
                    let is_frac = matches!(k, Kind::Cmd(c) if c == "frac");
                    let f = self.power()?;
                    if let (true, [(false, Expr::Num(whole))]) = (is_frac, factors.as_slice()) {
                        if let Some(mixed) = mixed_number(*whole, &f) {
                            factors[0].1 = Expr::Num(mixed);
                            continue;
                        }
                    }
                    factors.push((false, f));
                }
                _ => break,
            }
        }
        Ok(if factors.len() == 1 && !factors[0].0 { factors.swap_remove(0).1 } else { Expr::Product(factors) })
    }

    fn at_times(&self) -> bool {
        match self.peek() {
            Some(Kind::Sym('*')) => true,
            Some(Kind::Cmd(c)) => c == "cdot" || c == "times",
            _ => false,
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Some(Kind::Sym('-')) => {
                self.enter()?;
                self.pos += 1;
                let e = self.unary()?;
                self.leave();
                Ok(Expr::Neg(Box::new(e)))
            }
            Some(Kind::Sym('+')) => {
                self.pos += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<Expr, ParseError> {
        let base = self.postfix()?;
        if self.peek() == Some(&Kind::Sym('^')) {
            self.pos += 1;
            let exp = self.exponent()?;
            return Ok(Expr::Pow(Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.atom()?;
        let mut n = 0;
        while self.peek() == Some(&Kind::Sym('!')) {
            n += 1;
            if n > MAX_POSTFIX {
                return Err(self.unexpected());
            }
            self.pos += 1;
            e = Expr::Factorial(Box::new(e));
        }
        Ok(e)
    }

    fn atom(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let e = self.atom_inner()?;
        self.leave();
        Ok(e)
    }

    fn atom_inner(&mut self) -> Result<Expr, ParseError> {
        let at = self.pos;
        match self.next()? {
            Kind::Num(s) => {
                if self.peek() == Some(&Kind::Sym('_')) {
                    // `204_5`: a numeral in another base, compared as an opaque symbol.
                    self.pos += 1;
                    let base = self.raw_group()?;
                    return Ok(Expr::Var(format!("{s}_{base}")));
                }
                parse_number(&s).ok_or(ParseError::Unexpected { found: s, at })
            }
            Kind::Letter(c) => self.variable(c.to_string()),
            Kind::Cmd(name) => self.command(&name, at),
            Kind::Open => self.group(Kind::Close),
            Kind::Sym('(') => self.group_paren(),
            Kind::Sym('[') => self.group(Kind::Sym(']')),
            Kind::Sym('|') => {
                let e = self.group(Kind::Sym('|'))?;
                Ok(Expr::Func(Func::Abs, Box::new(e)))
            }
            _ => {
                self.pos = at;
                Err(self.unexpected())
            }
        }
    }

    fn group(&mut self, close: Kind) -> Result<Expr, ParseError> {
        let e = self.sum()?;
        self.expect(&close)?;
        Ok(e)
    }

    /// `( … )`, also closed by `]` in half-open writing inside larger expressions.
    fn group_paren(&mut self) -> Result<Expr, ParseError> {
        let e = self.sum()?;
        self.expect(&Kind::Sym(')'))?;
        Ok(e)
    }

    /// A name with optional subscript and primes; `e` is Euler's number; `f(x)` is a call.
    fn variable(&mut self, mut name: String) -> Result<Expr, ParseError> {
        let mut decorated = false;
        if self.peek() == Some(&Kind::Sym('_')) {
            self.pos += 1;
            let sub = self.raw_group()?;
            name = format!("{name}_{sub}");
            decorated = true;
        }
        while self.peek() == Some(&Kind::Sym('\'')) {
            self.pos += 1;
            name.push('\'');
            decorated = true;
        }
        if name == "e" && !decorated {
            return Ok(Expr::Const(Constant::E));
        }
        if let Some(arg) = self.try_call()? {
            return Ok(Expr::Call(name, Box::new(arg)));
        }
        Ok(Expr::Var(name))
    }

    fn try_call(&mut self) -> Result<Option<Expr>, ParseError> {
        let (Some(open), Some(arg), Some(close)) = (self.peek_at(0), self.peek_at(1), self.peek_at(2)) else {
            return Ok(None);
        };
        let single = matches!(arg.kind, Kind::Num(_) | Kind::Letter(_));
        if open.kind != Kind::Sym('(') || open.space || !single || close.kind != Kind::Sym(')') {
            return Ok(None);
        }
        self.pos += 1;
        let e = self.atom()?;
        self.expect(&Kind::Sym(')'))?;
        Ok(Some(e))
    }

    /// A subscript or accent argument as a canonical string: `{0}` and `0` both give `0`.
    fn raw_group(&mut self) -> Result<String, ParseError> {
        let mut s = String::new();
        match self.next()? {
            Kind::Open => {
                let mut depth = 1usize;
                loop {
                    match self.next()? {
                        Kind::Open => depth += 1,
                        Kind::Close => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        k => s.push_str(&kind_text(&k)),
                    }
                }
            }
            k @ (Kind::Num(_) | Kind::Letter(_) | Kind::Cmd(_) | Kind::Text(_) | Kind::Word(_)) => s.push_str(&kind_text(&k)),
            _ => {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.unexpected());
            }
        }
        Ok(s)
    }

    fn command(&mut self, name: &str, at: usize) -> Result<Expr, ParseError> {
        match name {
            "frac" => {
                let a = self.arg()?;
                let b = self.arg()?;
                Ok(Expr::Product(vec![(false, a), (true, b)]))
            }
            "binom" => {
                let a = self.arg()?;
                let b = self.arg()?;
                Ok(Expr::Binom(Box::new(a), Box::new(b)))
            }
            "sqrt" => {
                if self.peek() == Some(&Kind::Sym('[')) {
                    self.pos += 1;
                    let idx = self.group(Kind::Sym(']'))?;
                    let r = self.arg()?;
                    return Ok(Expr::Root(Box::new(idx), Box::new(r)));
                }
                let r = if matches!(self.peek(), Some(Kind::Sym('('))) { self.atom()? } else { self.arg()? };
                Ok(Expr::Func(Func::Sqrt, Box::new(r)))
            }
            "pi" => Ok(Expr::Const(Constant::Pi)),
            "infty" => Ok(Expr::Const(Constant::Infinity)),
            "nan" => Ok(Expr::Const(Constant::NaN)),
            "lfloor" => Ok(Expr::Func(Func::Floor, Box::new(self.group(Kind::Cmd("rfloor".into()))?))),
            "lceil" => Ok(Expr::Func(Func::Ceil, Box::new(self.group(Kind::Cmd("rceil".into()))?))),
            n if FUNCTION_CMDS.contains(&n) => self.function(n),
            n if ACCENT_CMDS.contains(&n) => {
                let g = self.raw_group()?;
                self.variable(format!("\\{n}{{{g}}}"))
            }
            n if NON_ATOM_CMDS.contains(&n) => {
                self.pos = at;
                Err(self.unexpected())
            }
            n => self.variable(format!("\\{n}")),
        }
    }

    /// `\sin^2 x`, `\log_{2} n`, `\cos(2t)`, `\sin 2x` (argument runs to the next function or
    /// operator).
    fn function(&mut self, name: &str) -> Result<Expr, ParseError> {
        let mut base = None;
        let mut power = None;
        for _ in 0..2 {
            match self.peek() {
                Some(Kind::Sym('_')) if base.is_none() => {
                    self.pos += 1;
                    base = Some(self.exponent()?);
                }
                Some(Kind::Sym('^')) if power.is_none() => {
                    self.pos += 1;
                    power = Some(self.exponent()?);
                }
                _ => break,
            }
        }
        let arg = self.fn_arg()?;
        let applied = match (name, base) {
            ("log" | "lg", b) => Expr::Log(Box::new(b.unwrap_or(Expr::Num(10.0))), Box::new(arg)),
            (n, None) => match Func::from_name(n) {
                Some(f) => Expr::Func(f, Box::new(arg)),
                None => return Err(self.unexpected()),
            },
            (_, Some(_)) => return Err(self.unexpected()),
        };
        Ok(match power {
            Some(p) => Expr::Pow(Box::new(applied), Box::new(p)),
            None => applied,
        })
    }

    fn fn_arg(&mut self) -> Result<Expr, ParseError> {
        if matches!(self.peek(), Some(Kind::Open | Kind::Sym('(' | '['))) {
            return self.atom();
        }
        let mut factors = vec![(false, self.power()?)];
        while let Some(k) = self.peek() {
            let is_fn = matches!(k, Kind::Cmd(c) if FUNCTION_CMDS.contains(&c.as_str()));
            if !starts_atom(k) || is_fn {
                break;
            }
            factors.push((false, self.power()?));
        }
        Ok(if factors.len() == 1 { factors.swap_remove(0).1 } else { Expr::Product(factors) })
    }

    /// One LaTeX argument: a braced group, or a single character/command (`\frac12`).
    fn arg(&mut self) -> Result<Expr, ParseError> {
        match self.peek().cloned() {
            Some(Kind::Open) => {
                self.pos += 1;
                self.group(Kind::Close)
            }
            Some(Kind::Num(s)) => {
                let mut chars = s.chars();
                let first = chars.next().ok_or(ParseError::UnexpectedEnd)?;
                let rest: String = chars.collect();
                if rest.is_empty() {
                    self.pos += 1;
                } else if let Some(t) = self.toks.get_mut(self.pos) {
                    t.kind = Kind::Num(rest);
                }
                parse_number(&first.to_string()).ok_or_else(|| self.unexpected())
            }
            Some(Kind::Letter(c)) => {
                self.pos += 1;
                Ok(letter(c))
            }
            Some(Kind::Cmd(_)) => self.atom(),
            _ => Err(self.unexpected()),
        }
    }

    /// A superscript: braced group, signed exponent, whole number, letter or command.
    fn exponent(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Some(Kind::Sym('-')) => {
                self.enter()?;
                self.pos += 1;
                let e = self.exponent()?;
                self.leave();
                Ok(Expr::Neg(Box::new(e)))
            }
            Some(Kind::Sym('+')) => {
                self.pos += 1;
                self.exponent()
            }
            Some(Kind::Letter(c)) => {
                let c = *c;
                self.pos += 1;
                Ok(letter(c))
            }
            Some(Kind::Num(_) | Kind::Open | Kind::Cmd(_) | Kind::Sym('(')) => self.atom(),
            _ => Err(self.unexpected()),
        }
    }
}

/// A word is a product of its letters: `aM^{1/3}` is a·M^{1/3} and `BEA_1` ends in the
/// variable `A_1`. Done once up front, linear in the input.
fn spell_out_words(toks: &[Tok]) -> Vec<Tok> {
    let mut out = Vec::with_capacity(toks.len());
    for t in toks {
        match &t.kind {
            Kind::Word(w) => {
                for (i, c) in w.chars().enumerate() {
                    out.push(Tok { kind: Kind::Letter(c), space: t.space && i == 0 });
                }
            }
            _ => out.push(t.clone()),
        }
    }
    out
}

fn letter(c: char) -> Expr {
    if c == 'e' {
        Expr::Const(Constant::E)
    } else {
        Expr::Var(c.to_string())
    }
}

/// Digits only reach here, so `NaN`/`inf` spelled as letters never become floats.
fn parse_number(s: &str) -> Option<Expr> {
    if !s.chars().next().is_some_and(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite()).map(Expr::Num)
}

/// `137 \frac{1}{2}` → 137.5, when both are plain integer literals and the fraction is proper.
fn mixed_number(whole: f64, frac: &Expr) -> Option<f64> {
    let Expr::Product(parts) = frac else {
        return None;
    };
    let [(false, Expr::Num(a)), (true, Expr::Num(b))] = parts.as_slice() else {
        return None;
    };
    let integral = |v: f64| v.fract() == 0.0 && v >= 0.0;
    (integral(whole) && integral(*a) && integral(*b) && a < b && *b > 0.0).then(|| whole + a / b)
}

pub fn starts_atom(k: &Kind) -> bool {
    match k {
        Kind::Num(_) | Kind::Letter(_) | Kind::Word(_) | Kind::Open => true,
        Kind::Sym(c) => matches!(c, '(' | '['),
        Kind::Cmd(c) => !NON_ATOM_CMDS.contains(&c.as_str()),
        _ => false,
    }
}

/// The text a token contributes to names and text keys.
pub fn kind_text(k: &Kind) -> String {
    match k {
        Kind::Num(s) | Kind::Word(s) | Kind::Cmd(s) | Kind::Text(s) => s.clone(),
        Kind::Letter(c) | Kind::Sym(c) => c.to_string(),
        Kind::Open => "{".into(),
        Kind::Close => "}".into(),
        Kind::SetOpen => "\\{".into(),
        Kind::SetClose => "\\}".into(),
        Kind::RowSep => "\\\\".into(),
        Kind::Begin(s) => format!("\\begin{{{s}}}"),
        Kind::End(s) => format!("\\end{{{s}}}"),
        Kind::Percent => "%".into(),
        Kind::Degree => "°".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::lex;

    fn p(s: &str) -> Result<Expr, ParseError> {
        parse_expr(&lex(s))
    }

    #[test]
    fn fractions_and_mixed_numbers() {
        assert_eq!(p("\\frac12").unwrap(), p("\\frac{1}{2}").unwrap());
        assert_eq!(p("\\frac 1 2").unwrap(), p("\\frac{1}{2}").unwrap());
        assert_eq!(p("137 \\frac{1}{2}").unwrap(), Expr::Num(137.5));
        assert!(matches!(p("\\frac9{19}").unwrap(), Expr::Product(_)));
    }

    #[test]
    fn calls_versus_products() {
        assert!(matches!(p("f(x)").unwrap(), Expr::Call(..)));
        assert!(matches!(p("n(n+1)").unwrap(), Expr::Product(_)));
        assert!(matches!(p("f (x)").unwrap(), Expr::Product(_)));
    }

    #[test]
    fn functions() {
        assert!(p("\\sin^{2} \\theta").is_ok());
        assert!(p("\\log_{2} n + 1").is_ok());
        assert!(p("\\sqrt[3]{x}").is_ok());
        assert!(p("e^{-\\zeta \\omega_{n} t} \\cos \\left(\\omega_{n} t\\right)").is_ok());
        assert!(p("\\lfloor \\frac{2n}{3} \\rfloor + 1").is_ok());
    }

    #[test]
    fn rejects_garbage_and_depth() {
        assert!(p("1 2").is_err());
        assert!(p("(1,2)").is_err());
        assert!(p("+").is_err());
        let deep = "(".repeat(10_000) + "1" + &")".repeat(10_000);
        assert_eq!(p(&deep), Err(ParseError::TooDeep));
        let deep_frac = "\\frac{".repeat(5_000) + "1";
        assert_eq!(p(&deep_frac), Err(ParseError::TooDeep));
        assert!(p("5!!!!!!!!").is_err());
    }
}
