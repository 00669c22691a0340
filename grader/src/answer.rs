//! Answer structure: one final answer string → [`Answer`] (list, tuple, interval, set, matrix,
//! equation, relation, scalar expression or plain text).
//!
//! Rules, applied outside-in:
//! - Top-level `,` `;` "or" "and" split a list; a list is unordered (`1, 2` = `2, 1` = `\{1,2\}`).
//! - `1,000` / `$1,000.50` as a whole answer is one number (commas in 3-digit groups, no space).
//! - One `\pm` (or `\mp`) anywhere expands into two answers; more than one is text.
//! - `\{…\}` is a set; `\begin{pmatrix}…` a matrix; `x \in S` is `S`; `A \cup B` a union.
//! - `=` / `\approx` make an equation; `< > \le \ge \ne` a relation.
//! - `(…)` / `[…]` with a top-level comma is a tuple or interval; brackets are kept.
//! - Otherwise a scalar: `^\circ`/`°` and `%` are noted and removed, arcminute and arcsecond
//!   marks after a value (`0.5''`, `2^{\prime\prime}`, `3"`) and trailing units (`5 apples`,
//!   `15\mbox{ cm}^2`, `10 km/h`, `2 \text{ arcsec}`, `5 \Omega`) are dropped, and the rest is
//!   parsed as an expression; what does not parse is text, compared by its letters and digits.

use crate::expr::Expr;
use crate::lexer::{lex, Kind, Tok};
use crate::limits::{MAX_ANSWER_BYTES, MAX_ITEMS, MAX_STRUCT_DEPTH};
use crate::parse_expr::{kind_text, parse_expr};
use crate::signature::Signature;

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Boxed: a scalar is much larger than the other variants.
    Scalar(Box<Scalar>),
    /// Unparseable or textual: lowercased letters and digits only (`\text{(B)}` → `b`).
    Text(String),
    /// Order-sensitive: tuples `(1,2)`, intervals `(1,2]`, vectors.
    Seq {
        open: char,
        close: char,
        items: Vec<Answer>,
    },
    /// Order-insensitive: `\{1,2\}`, `1, 2`, `x=1 or x=2`, `1 \pm \sqrt2`.
    Set(Vec<Answer>),
    Matrix(Vec<Vec<Answer>>),
    Union(Vec<Answer>),
    /// `a = b (= c …)`.
    Eq(Vec<Answer>),
    /// `a < b ≤ c`: parts and the operators between them.
    Rel {
        parts: Vec<Answer>,
        ops: Vec<RelOp>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub expr: Expr,
    pub sig: Signature,
    pub percent: bool,
    pub degree: bool,
    /// Text key of the tokens, for comparison against a textual gold answer.
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelOp {
    Lt,
    Le,
    Gt,
    Ge,
    Ne,
}

impl RelOp {
    pub fn flipped(self) -> RelOp {
        match self {
            RelOp::Lt => RelOp::Gt,
            RelOp::Le => RelOp::Ge,
            RelOp::Gt => RelOp::Lt,
            RelOp::Ge => RelOp::Le,
            RelOp::Ne => RelOp::Ne,
        }
    }
}

impl Answer {
    /// The text key of a scalar or text answer, for comparison with a textual gold.
    pub fn text_key(&self) -> Option<&str> {
        match self {
            Answer::Scalar(s) => Some(&s.key),
            Answer::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// Parses one final answer. Never fails: what has no structure is [`Answer::Text`].
pub fn parse_answer(s: &str) -> Answer {
    let s = s.trim();
    if s.len() > MAX_ANSWER_BYTES {
        return Answer::Text(long_text_key(s));
    }
    let toks = lex(s);
    parse_list(trim_ends(&toks), 0)
}

/// Lowercased ASCII letters and digits of `s`.
pub fn text_key_str(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

/// The key of an over-long answer, or "" (which matches nothing) once it outgrows any gold.
fn long_text_key(s: &str) -> String {
    let mut key = String::new();
    for c in s.chars().filter(char::is_ascii_alphanumeric) {
        if key.len() >= MAX_ANSWER_BYTES {
            return String::new();
        }
        key.push(c.to_ascii_lowercase());
    }
    key
}

fn text_key(toks: &[Tok]) -> String {
    let s: String = toks.iter().map(|t| kind_text(&t.kind)).collect();
    text_key_str(&s)
}

/// Drops sentence punctuation and stray separators at both ends.
fn trim_ends(toks: &[Tok]) -> &[Tok] {
    let junk = |t: &Tok| matches!(&t.kind, Kind::Sym('.' | ',' | ';' | ':')) || is_separator(&t.kind);
    let start = toks.iter().position(|t| !junk(t)).unwrap_or(toks.len());
    let end = toks.iter().rposition(|t| !junk(t)).map_or(start, |e| e + 1);
    toks.get(start..end.max(start)).unwrap_or(&[])
}

fn is_separator(k: &Kind) -> bool {
    match k {
        Kind::Sym(',' | ';') => true,
        Kind::Word(w) | Kind::Text(w) => {
            matches!(w.to_ascii_lowercase().as_str(), "or" | "and" | "," | ";")
        }
        Kind::Cmd(c) => c == "or" || c == "and",
        _ => false,
    }
}

/// Bracket depth change of a token, for finding what is at top level.
fn depth_delta(k: &Kind) -> i32 {
    match k {
        Kind::Open | Kind::SetOpen | Kind::Begin(_) | Kind::Sym('(' | '[') => 1,
        Kind::Close | Kind::SetClose | Kind::End(_) | Kind::Sym(')' | ']') => -1,
        Kind::Cmd(c) if c == "lfloor" || c == "lceil" => 1,
        Kind::Cmd(c) if c == "rfloor" || c == "rceil" => -1,
        _ => 0,
    }
}

/// Splits at top-level tokens for which `sep` holds; the separators are dropped.
fn split_top<'a>(toks: &'a [Tok], sep: &dyn Fn(&Kind) -> bool) -> Vec<&'a [Tok]> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        if depth == 0 && sep(&t.kind) {
            parts.push(toks.get(start..i).unwrap_or(&[]));
            start = i + 1;
        }
        depth += depth_delta(&t.kind);
    }
    parts.push(toks.get(start..).unwrap_or(&[]));
    parts
}

/// Index of the token that closes the bracket opened at 0, if any.
fn closing_index(toks: &[Tok]) -> Option<usize> {
    let mut depth = 0i32;
    for (i, t) in toks.iter().enumerate() {
        depth += depth_delta(&t.kind);
        if depth == 0 {
            return (i > 0).then_some(i);
        }
    }
    None
}

fn wraps_all(toks: &[Tok]) -> bool {
    closing_index(toks) == Some(toks.len().wrapping_sub(1))
}

/// Removes `{…}` around everything (they are invisible in LaTeX); one pass with a stack.
fn strip_braces(toks: &[Tok]) -> &[Tok] {
    let mut partner = vec![usize::MAX; toks.len()];
    let mut stack = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            Kind::Open => stack.push(i),
            Kind::Close => {
                if let Some(o) = stack.pop() {
                    partner[o] = i;
                }
            }
            _ => {}
        }
    }
    let (mut lo, mut hi) = (0, toks.len());
    while hi > lo + 1 && partner.get(lo) == Some(&(hi - 1)) {
        lo += 1;
        hi -= 1;
    }
    toks.get(lo..hi).unwrap_or(&[])
}

fn parse_list(toks: &[Tok], depth: usize) -> Answer {
    if depth > MAX_STRUCT_DEPTH {
        return Answer::Text(text_key(toks));
    }
    let toks = strip_braces(toks);
    if let Some(merged) = merge_thousands(toks) {
        return parse_element(&merged, depth + 1);
    }
    let parts = split_top(toks, &is_separator);
    if parts.len() == 1 {
        return parse_element(toks, depth + 1);
    }
    collect_items(parts.into_iter().filter(|p| !p.is_empty()), depth, toks)
}

/// Parses items into a set, flattening nested sets (`x=1 or x=2, 3`, `\pm` pairs).
fn collect_items<'a>(parts: impl Iterator<Item = &'a [Tok]>, depth: usize, all: &[Tok]) -> Answer {
    let mut items = Vec::new();
    for p in parts {
        match parse_element(p, depth + 1) {
            Answer::Set(inner) => items.extend(inner),
            a => items.push(a),
        }
        if items.len() > MAX_ITEMS {
            return Answer::Text(text_key(all));
        }
    }
    if items.len() == 1 {
        return items.pop().unwrap_or(Answer::Text(String::new()));
    }
    Answer::Set(items)
}

/// `1,000,000` / `-1,234.5`, with nothing but markers and units after: one number.
fn merge_thousands(toks: &[Tok]) -> Option<Vec<Tok>> {
    let mut i = usize::from(matches!(toks.first().map(|t| &t.kind), Some(Kind::Sym('-'))));
    let Some(Kind::Num(head)) = toks.get(i).map(|t| &t.kind) else {
        return None;
    };
    if head.is_empty() || head.len() > 3 || !head.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut number = head.clone();
    let mut groups = 0;
    while let (Some(Kind::Sym(',')), Some(next)) = (toks.get(i + 1).map(|t| &t.kind), toks.get(i + 2)) {
        let Kind::Num(g) = &next.kind else {
            return None;
        };
        let int_part = g.split('.').next().unwrap_or("");
        if next.space || int_part.len() != 3 || !int_part.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        number.push_str(g);
        groups += 1;
        i += 2;
        if g.contains('.') {
            break;
        }
    }
    let rest = toks.get(i + 1..).unwrap_or(&[]);
    if groups == 0 || rest.iter().any(|t| is_separator(&t.kind)) {
        return None;
    }
    let mut out: Vec<Tok> = toks.get(..i + 1 - 2 * groups)?.to_vec();
    if let Some(last) = out.last_mut() {
        last.kind = Kind::Num(number);
    }
    out.extend_from_slice(rest);
    Some(out)
}

fn parse_element(toks: &[Tok], depth: usize) -> Answer {
    if depth > MAX_STRUCT_DEPTH {
        return Answer::Text(text_key(toks));
    }
    let toks = strip_braces(trim_ends(toks));
    let Some(first) = toks.first() else {
        return Answer::Text(String::new());
    };
    if first.kind == Kind::SetOpen && wraps_all(toks) {
        let inner = toks.get(1..toks.len() - 1).unwrap_or(&[]);
        let parts = split_top(inner, &|k| matches!(k, Kind::Sym(',' | ';')));
        return match collect_items(parts.into_iter().filter(|p| !p.is_empty()), depth, toks) {
            Answer::Set(items) => Answer::Set(items),
            one => Answer::Set(vec![one]),
        };
    }
    if let Kind::Begin(env) = &first.kind {
        if env.ends_with("matrix") || env == "array" {
            if let Some(m) = parse_matrix(toks, depth) {
                return m;
            }
        }
    }
    let is_in = |k: &Kind| matches!(k, Kind::Cmd(c) if c == "in");
    let mut around_in = split_top(toks, &is_in);
    if around_in.len() > 1 {
        if let Some(after) = around_in.pop() {
            return parse_element(after, depth + 1);
        }
    }
    let is_cup = |k: &Kind| matches!(k, Kind::Cmd(c) if c == "cup");
    let unions = split_top(toks, &is_cup);
    if unions.len() > 1 {
        return Answer::Union(unions.into_iter().map(|p| parse_element(p, depth + 1)).collect());
    }
    if let Some(seq) = parse_seq(toks, depth) {
        return seq;
    }
    if let Some(a) = expand_pm(toks, depth) {
        return a;
    }
    if let Some(rel) = parse_relation(toks, depth) {
        return rel;
    }
    if toks.iter().all(|t| matches!(t.kind, Kind::Text(_))) {
        return Answer::Text(text_key(toks));
    }
    parse_scalar(toks)
}

/// One `\pm`/`\mp` anywhere: the answer with `+` and with `-` in its place.
fn expand_pm(toks: &[Tok], depth: usize) -> Option<Answer> {
    let is_pm = |t: &Tok| matches!(&t.kind, Kind::Cmd(c) if c == "pm" || c == "mp");
    let mut found = toks.iter().enumerate().filter(|(_, t)| is_pm(t));
    let (at, tok) = found.next()?;
    if found.next().is_some() {
        return Some(Answer::Text(text_key(toks)));
    }
    let minus_first = matches!(&tok.kind, Kind::Cmd(c) if c == "mp");
    let variant = |sign: char| {
        let mut v = toks.to_vec();
        if let Some(t) = v.get_mut(at) {
            t.kind = Kind::Sym(sign);
        }
        parse_element(&v, depth + 1)
    };
    let (a, b) = if minus_first { ('-', '+') } else { ('+', '-') };
    Some(Answer::Set(vec![variant(a), variant(b)]))
}

fn parse_matrix(toks: &[Tok], depth: usize) -> Option<Answer> {
    if !wraps_all(toks) {
        return None;
    }
    let inner = toks.get(1..toks.len() - 1)?;
    let mut rows = Vec::new();
    for row in split_top(inner, &|k| *k == Kind::RowSep) {
        if row.is_empty() {
            continue;
        }
        let cells = split_top(row, &|k| *k == Kind::Sym('&'));
        if cells.len() > MAX_ITEMS {
            return None;
        }
        rows.push(cells.into_iter().map(|c| parse_element(c, depth + 1)).collect::<Vec<_>>());
        if rows.len() > MAX_ITEMS {
            return None;
        }
    }
    Some(Answer::Matrix(rows))
}

fn rel_op(k: &Kind) -> Option<Option<RelOp>> {
    Some(match k {
        Kind::Sym('=') => None,
        Kind::Cmd(c) if c == "approx" || c == "equiv" => None,
        Kind::Sym('<') => Some(RelOp::Lt),
        Kind::Sym('>') => Some(RelOp::Gt),
        Kind::Cmd(c) => match c.as_str() {
            "le" => Some(RelOp::Le),
            "ge" => Some(RelOp::Ge),
            "lt" => Some(RelOp::Lt),
            "gt" => Some(RelOp::Gt),
            "ne" => Some(RelOp::Ne),
            _ => return None,
        },
        _ => return None,
    })
}

/// `a = b`, `x \approx 3.14`, `k \ge 2`, `1 < x < 2`. An empty left side (`= 5`) is dropped.
fn parse_relation(toks: &[Tok], depth: usize) -> Option<Answer> {
    let mut parts = Vec::new();
    let mut ops = Vec::new();
    let mut level = 0i32;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        if level == 0 {
            if let Some(op) = rel_op(&t.kind) {
                parts.push(toks.get(start..i).unwrap_or(&[]));
                ops.push(op);
                start = i + 1;
            }
        }
        level += depth_delta(&t.kind);
    }
    if ops.is_empty() {
        return None;
    }
    parts.push(toks.get(start..).unwrap_or(&[]));
    if parts.first().is_some_and(|p| p.is_empty()) {
        parts.remove(0);
        ops.remove(0);
    }
    if parts.iter().any(|p| p.is_empty()) || parts.len() > MAX_ITEMS {
        return Some(Answer::Text(text_key(toks)));
    }
    let parsed: Vec<Answer> = parts.iter().map(|p| parse_element(p, depth + 1)).collect();
    if ops.is_empty() {
        return parsed.into_iter().next();
    }
    if ops.iter().all(Option::is_none) {
        return Some(Answer::Eq(parsed));
    }
    let ops: Option<Vec<RelOp>> = ops.into_iter().collect();
    Some(match ops {
        Some(ops) => Answer::Rel { parts: parsed, ops },
        None => Answer::Text(text_key(toks)), // mixed `=` and `<`
    })
}

/// `(a, b)`, `[a, b)`, `(a, b, c)`: brackets enclosing everything with a top-level comma.
fn parse_seq(toks: &[Tok], depth: usize) -> Option<Answer> {
    let open = match toks.first()?.kind {
        Kind::Sym(c @ ('(' | '[')) => c,
        _ => return None,
    };
    let close = match toks.last()?.kind {
        Kind::Sym(c @ (')' | ']')) => c,
        _ => return None,
    };
    if !wraps_all(toks) {
        return None;
    }
    let inner = toks.get(1..toks.len() - 1)?;
    let parts = split_top(inner, &|k| *k == Kind::Sym(','));
    if parts.len() < 2 {
        return None;
    }
    if parts.len() > MAX_ITEMS {
        return Some(Answer::Text(text_key(toks)));
    }
    let items = parts.into_iter().map(|p| parse_element(p, depth + 1)).collect();
    Some(Answer::Seq { open, close, items })
}

fn parse_scalar(toks: &[Tok]) -> Answer {
    let key = text_key(toks);
    let percent = toks.iter().any(|t| t.kind == Kind::Percent);
    let degree = toks.iter().any(|t| t.kind == Kind::Degree);
    let mut kept: Vec<Tok> = toks.iter().filter(|t| !matches!(t.kind, Kind::Percent | Kind::Degree)).cloned().collect();
    drop_arc_marks(&mut kept);
    let parsed = unit_cuts(&kept)
        .into_iter()
        .find_map(|k| kept.get(..k).and_then(|body| parse_expr(body).ok()))
        .map_or_else(|| parse_expr(&kept), Ok);
    match parsed {
        Ok(expr) => Answer::Scalar(Box::new(Scalar { sig: Signature::of(&expr), expr, percent, degree, key })),
        Err(_) => Answer::Text(key),
    }
}

/// Arcminute and arcsecond marks after a number (`0.5''`, `2.5^{\prime\prime}`, `3"`, `1.5″`)
/// are units and go; a prime after a letter or a subscript (`y'`, `y_1'`, `y_{1}'`) is a
/// derivative and stays.
fn drop_arc_marks(toks: &mut Vec<Tok>) {
    let is_mark = |t: &Tok| matches!(t.kind, Kind::Sym('\'' | '"' | '′' | '″'));
    let marks = toks.iter().rev().take_while(|t| is_mark(t)).count();
    let at = |back: usize| {
        let i = toks.len().checked_sub(marks + back)?;
        toks.get(i).map(|t| &t.kind)
    };
    let subscript = matches!(at(2), Some(Kind::Sym('_')));
    let value_before = matches!(at(1), Some(Kind::Num(_) | Kind::Sym(')'))) && !subscript;
    if marks > 0 && value_before {
        toks.truncate(toks.len() - marks);
    }
}

/// Where a trailing unit could be cut off, longest unit first (at most four tries): a
/// top-level suffix that starts with a word of two or more letters (or `\text{…}`, an
/// upright `\mathrm{m}`, or a [`unit_start`] sign) right after a value, and holds only
/// letters, words, text, `^`, `/`, `.`, `\cdot`, braces and exponents. `2RC + R` keeps its
/// `RC` because `+` cannot be part of a unit; `x + ce^{t}` keeps `ce` because a unit never
/// follows `+`. One backward pass.
fn unit_cuts(toks: &[Tok]) -> Vec<usize> {
    let n = toks.len();
    let mut tail_ok = vec![true; n + 1];
    for i in (0..n).rev() {
        let prev = i.checked_sub(1).and_then(|p| toks.get(p)).map(|t| &t.kind);
        tail_ok[i] = tail_ok[i + 1] && toks.get(i).is_some_and(|t| unit_token(&t.kind, prev));
    }
    let mut level = 0i32;
    let mut cuts = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let after_value = i.checked_sub(1).and_then(|p| toks.get(p)).is_some_and(|p| {
            matches!(p.kind, Kind::Num(_) | Kind::Close | Kind::Sym(')' | ']') | Kind::Letter(_))
                || matches!(&p.kind, Kind::Cmd(c) if c == "pi" || c == "infty")
        });
        let next = toks.get(i + 1).map(|t| &t.kind);
        if level == 0 && after_value && unit_start(&t.kind, next) && tail_ok[i] {
            cuts.push(i);
            if cuts.len() == 4 {
                break;
            }
        }
        level += depth_delta(&t.kind);
    }
    cuts
}

/// A word, `\text{…}`, an ohm or ångström sign, or `\mu` before a word or the letter of a
/// metre, second or gram (`\mu\text{m}`, `\mu s`): a bare `\mu` after a number, or before
/// another letter, is more often a variable than a unit.
fn unit_start(k: &Kind, next: Option<&Kind>) -> bool {
    match k {
        Kind::Word(_) | Kind::Text(_) => true,
        Kind::Cmd(c) if UNIT_SIGNS.contains(&c.as_str()) => true,
        Kind::Cmd(c) if c == "mu" => matches!(next, Some(Kind::Word(_) | Kind::Text(_) | Kind::Letter('m' | 's' | 'g'))),
        _ => false,
    }
}

/// Commands that are units wherever they follow a value.
const UNIT_SIGNS: &[&str] = &["Omega", "AA", "ohm", "mho"];

fn unit_token(k: &Kind, prev: Option<&Kind>) -> bool {
    match k {
        Kind::Cmd(c) if UNIT_SIGNS.contains(&c.as_str()) || c == "mu" => true,
        Kind::Word(_) | Kind::Letter(_) | Kind::Text(_) | Kind::Open | Kind::Close => true,
        Kind::Sym('^' | '/' | '.') => true,
        Kind::Sym('-') => matches!(prev, Some(Kind::Open | Kind::Sym('^'))),
        Kind::Num(_) => matches!(prev, Some(Kind::Sym('^' | '-') | Kind::Open)),
        Kind::Cmd(c) => c == "cdot",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(a: &Answer) -> bool {
        matches!(a, Answer::Scalar(_))
    }

    #[test]
    fn structures() {
        assert!(matches!(parse_answer("(1,2]"), Answer::Seq { open: '(', close: ']', .. }));
        assert!(matches!(parse_answer("\\{1,2\\}"), Answer::Set(v) if v.len() == 2));
        assert!(matches!(parse_answer("1, 2, 3"), Answer::Set(v) if v.len() == 3));
        assert!(matches!(parse_answer("x=1 \\text{ or } x=2"), Answer::Set(v) if v.len() == 2));
        assert!(matches!(parse_answer("1 \\pm \\sqrt{19}"), Answer::Set(v) if v.len() == 2));
        assert!(matches!(parse_answer("(-\\infty, 2) \\cup (3, \\infty)"), Answer::Union(v) if v.len() == 2));
        assert!(matches!(parse_answer("y = 2x + 3"), Answer::Eq(v) if v.len() == 2));
        assert!(matches!(parse_answer("k \\geqslant 2"), Answer::Rel { .. }));
        assert!(matches!(
            parse_answer("\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}"),
            Answer::Matrix(rows) if rows.len() == 2 && rows[0].len() == 2
        ));
        assert!(matches!(parse_answer("x \\in [-2,7]"), Answer::Seq { open: '[', close: ']', .. }));
    }

    #[test]
    fn scalars_units_and_markers() {
        assert!(scalar(&parse_answer("1,000")));
        assert!(scalar(&parse_answer("\\$32,\\!348")));
        assert!(scalar(&parse_answer("5 apples")));
        assert!(scalar(&parse_answer("15\\mbox{ cm}^2")));
        assert!(scalar(&parse_answer("\\frac{270}7\\text{ degrees}")));
        assert!(scalar(&parse_answer("2RC+R+C")));
        assert!(matches!(parse_answer("50\\%"), Answer::Scalar(s) if s.percent));
        assert!(matches!(parse_answer("30^\\circ"), Answer::Scalar(s) if s.degree));
        assert_eq!(parse_answer("\\text{(B)}"), Answer::Text("b".into()));
        assert!(matches!(parse_answer("1,3,5"), Answer::Set(v) if v.len() == 3));
        assert!(matches!(parse_answer("2500,7500"), Answer::Set(v) if v.len() == 2));
    }
}
