//! Lexer: answer text (LaTeX or plain) → tokens, dropping layout-only LaTeX on the way.
//!
//! Dropped: `$`, `\(` `\)` `\[` `\]`, `\left` `\right` `\big…` (and their `.`), spacing
//! (`\,` `\!` `\;` `\:` `\quad` `~`), `\displaystyle`, font switches (`\mathrm{…}` keeps its
//! content), `\$`. Renamed: `\dfrac` `\tfrac` → `frac`, `\leq…` → `le`, unicode `π ≤ ± ×` to
//! their commands. Markers: `^\circ` `°` → [`Kind::Degree`], `\%` `%` → [`Kind::Percent`].
//! Thousands separators `{,}` and `,\!` inside a number are removed here; a bare `1,000` is left
//! to the answer parser, which alone knows whether the comma is at top level.

/// One token; `space` is whether whitespace preceded it (`f(x)` is a call, `f (x)` is not).
#[derive(Debug, Clone, PartialEq)]
pub struct Tok {
    pub kind: Kind,
    pub space: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Decimal literal, thousands separators removed: `12`, `3.5`, `.5`, `4.5e33`.
    Num(String),
    /// A single letter.
    Letter(char),
    /// A run of two or more ASCII letters that is not a function name: `cm`, `apples`, `or`.
    Word(String),
    /// A control word without its backslash, renamed to a canonical spelling.
    Cmd(String),
    /// Any other single character: `+ - * / ^ _ ( ) [ ] , = ! | < > ' ; : &`.
    Sym(char),
    /// `{` and `}`.
    Open,
    Close,
    /// `\{` and `\}`.
    SetOpen,
    SetClose,
    /// `\\` (matrix row separator).
    RowSep,
    /// Content of `\text{…}` / `\mbox{…}` / `\textbf{…}`, trimmed.
    Text(String),
    /// `\begin{name}` and `\end{name}`.
    Begin(String),
    End(String),
    Percent,
    Degree,
}

const TEXT_CMDS: &[&str] = &["text", "textbf", "textit", "textrm", "texttt", "textsf", "textnormal", "textup", "mbox", "hbox", "emph"];
/// Dropped with their braces, content kept: `\mathrm{cm}` is `cm`, `\boxed{2}` is `2`.
const FONT_CMDS: &[&str] = &[
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mathtt",
    "mathnormal",
    "boldsymbol",
    "bm",
    "operatorname",
    "mathop",
    "rm",
    "bf",
    "it",
    "boxed",
    "fbox",
    "underbrace",
    "color",
];
/// Upright fonts: a single letter inside is a word, so `10 \mathrm{m}` ends in a unit.
const UPRIGHT_CMDS: &[&str] = &["mathrm", "rm", "operatorname", "mathop"];
const DROPPED_CMDS: &[&str] = &[
    "displaystyle",
    "textstyle",
    "scriptstyle",
    "quad",
    "qquad",
    "enspace",
    "thinspace",
    "negthinspace",
    "limits",
    "nolimits",
    "mathstrut",
    "strut",
    "middle",
    "ensuremath",
    "hfill",
    "allowbreak",
    "nonumber",
    "notag",
];
const DELIM_SIZE_CMDS: &[&str] =
    &["left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr", "Biggl", "Biggr", "bigm", "Bigm"];
/// Names read as functions when written without a backslash (`sin x`, `sqrt(2)`).
pub const FUNCTION_WORDS: &[&str] =
    &["sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "ln", "log", "lg", "exp", "sqrt"];

/// Lexes `s`. Never fails: characters it has no use for become [`Kind::Sym`].
pub fn lex(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let closer = match_braces(&chars);
    let mut skip_close = vec![false; chars.len()];
    let mut out = Lexed { toks: Vec::new(), space: false, upright_until: Vec::new() };
    let mut i = 0;
    while i < chars.len() {
        while out.upright_until.last().is_some_and(|&end| i > end) {
            out.upright_until.pop();
        }
        let c = chars[i];
        match c {
            c if c.is_whitespace() || c == '~' => {
                out.space = true;
                i += 1;
            }
            '$' => i += 1,
            '\\' => i = lex_backslash(&chars, i, &closer, &mut skip_close, &mut out),
            '{' => {
                out.push(Kind::Open);
                i += 1;
            }
            '}' => {
                if !skip_close[i] {
                    out.push(Kind::Close);
                }
                i += 1;
            }
            '%' => {
                out.push(Kind::Percent);
                i += 1;
            }
            '^' => i = lex_caret(&chars, i, &mut out),
            c if c.is_ascii_digit() => i = lex_number(&chars, i, &mut out),
            '.' if chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) && !out.last_is_num() => i = lex_number(&chars, i, &mut out),
            c if c.is_ascii_alphabetic() => i = lex_letters(&chars, i, &mut out),
            c => {
                out.push(unicode_kind(c));
                i += 1;
            }
        }
    }
    out.toks
}

struct Lexed {
    toks: Vec<Tok>,
    space: bool,
    /// Closing-brace indices of the upright font groups we are inside.
    upright_until: Vec<usize>,
}

impl Lexed {
    fn push(&mut self, kind: Kind) {
        self.toks.push(Tok { kind, space: self.space });
        self.space = false;
    }
    fn last_is_num(&self) -> bool {
        matches!(self.toks.last(), Some(Tok { kind: Kind::Num(_), .. }))
    }
}

/// For each unescaped `{`, the index of its matching `}`; one pass with a stack.
fn match_braces(chars: &[char]) -> Vec<Option<usize>> {
    let mut closer = vec![None; chars.len()];
    let mut stack = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1, // skip the escaped character
            '{' => stack.push(i),
            '}' => {
                if let Some(open) = stack.pop() {
                    closer[open] = Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    closer
}

fn unicode_kind(c: char) -> Kind {
    match c {
        'π' => Kind::Cmd("pi".into()),
        '°' => Kind::Degree,
        '√' => Kind::Cmd("sqrt".into()),
        '∞' => Kind::Cmd("infty".into()),
        '×' => Kind::Cmd("times".into()),
        '·' | '⋅' => Kind::Cmd("cdot".into()),
        '÷' => Kind::Cmd("div".into()),
        '−' | '–' => Kind::Sym('-'),
        '≤' => Kind::Cmd("le".into()),
        '≥' => Kind::Cmd("ge".into()),
        '≠' => Kind::Cmd("ne".into()),
        '≈' => Kind::Cmd("approx".into()),
        '±' => Kind::Cmd("pm".into()),
        '∓' => Kind::Cmd("mp".into()),
        '∪' => Kind::Cmd("cup".into()),
        '∩' => Kind::Cmd("cap".into()),
        '∈' => Kind::Cmd("in".into()),
        '⟨' => Kind::Sym('('),
        '⟩' => Kind::Sym(')'),
        c if c.is_alphabetic() => Kind::Letter(c),
        c => Kind::Sym(c),
    }
}

fn lex_backslash(chars: &[char], i: usize, closer: &[Option<usize>], skip_close: &mut [bool], out: &mut Lexed) -> usize {
    let Some(&next) = chars.get(i + 1) else {
        return i + 1;
    };
    if !next.is_ascii_alphabetic() {
        match next {
            '{' => out.push(Kind::SetOpen),
            '}' => out.push(Kind::SetClose),
            '\\' => out.push(Kind::RowSep),
            '%' => out.push(Kind::Percent),
            '|' => out.push(Kind::Sym('|')),
            ',' | ';' | ':' | '!' | '>' | ' ' | '\n' | '\t' => out.space = true,
            // `\(` `\)` `\[` `\]` delimit math; `\$` `\#` `\&` `\_` are escapes of no value here.
            _ => {}
        }
        return i + 2;
    }
    let mut j = i + 1;
    while j < chars.len() && chars[j].is_ascii_alphabetic() {
        j += 1;
    }
    let name: String = chars[i + 1..j].iter().collect();
    let name = name.as_str();
    if TEXT_CMDS.contains(&name) {
        return lex_text(chars, j, closer, out);
    }
    if FONT_CMDS.contains(&name) {
        let k = skip_spaces(chars, j);
        if let (Some('{'), Some(Some(end))) = (chars.get(k), closer.get(k)) {
            skip_close[*end] = true;
            if UPRIGHT_CMDS.contains(&name) {
                out.upright_until.push(*end);
            }
            return k + 1;
        }
        return j;
    }
    if DROPPED_CMDS.contains(&name) {
        out.space = true;
        return j;
    }
    if DELIM_SIZE_CMDS.contains(&name) {
        // `\left.` and `\right.` are invisible delimiters: drop the dot as well.
        let k = skip_spaces(chars, j);
        return if chars.get(k) == Some(&'.') { k + 1 } else { j };
    }
    match name {
        "begin" | "end" => return lex_env(chars, j, closer, name == "begin", out),
        "hspace" | "vspace" | "phantom" | "hphantom" | "vphantom" | "label" | "tag" => {
            let k = skip_spaces(chars, j);
            if let (Some('{'), Some(Some(end))) = (chars.get(k), closer.get(k)) {
                return end + 1;
            }
            return j;
        }
        "circ" | "degree" => out.push(Kind::Degree),
        "prime" => out.push(Kind::Sym('\'')),
        "lbrace" => out.push(Kind::SetOpen),
        "rbrace" => out.push(Kind::SetClose),
        "langle" | "lparen" => out.push(Kind::Sym('(')),
        "rangle" | "rparen" => out.push(Kind::Sym(')')),
        "lbrack" => out.push(Kind::Sym('[')),
        "rbrack" => out.push(Kind::Sym(']')),
        "vert" | "lvert" | "rvert" | "mid" => out.push(Kind::Sym('|')),
        "percent" => out.push(Kind::Percent),
        "neg" | "lnot" => out.push(Kind::Sym('~')),
        _ => out.push(Kind::Cmd(canonical_cmd(name).to_string())),
    }
    j
}

fn canonical_cmd(name: &str) -> &str {
    match name {
        "dfrac" | "tfrac" | "cfrac" => "frac",
        "dbinom" | "tbinom" | "choose" => "binom",
        "leq" | "leqslant" | "leqq" | "le" => "le",
        "geq" | "geqslant" | "geqq" | "ge" => "ge",
        "neq" | "ne" => "ne",
        "lt" => "lt",
        "gt" => "gt",
        "ast" | "star" => "cdot",
        "infin" | "infinity" => "infty",
        "varepsilon" => "epsilon",
        "varphi" => "phi",
        "vartheta" => "theta",
        "varrho" => "rho",
        "varsigma" => "sigma",
        "arcsec" => "arcsec",
        "dots" | "ldots" | "cdots" | "dotsc" | "dotsb" => "dots",
        "land" | "wedge" => "and",
        "lor" | "vee" => "or",
        other => other,
    }
}

fn skip_spaces(chars: &[char], mut k: usize) -> usize {
    while chars.get(k).is_some_and(|c| c.is_whitespace()) {
        k += 1;
    }
    k
}

/// `\text{…}`: the content, trimmed, as one token; a number inside stays a number.
fn lex_text(chars: &[char], j: usize, closer: &[Option<usize>], out: &mut Lexed) -> usize {
    let k = skip_spaces(chars, j);
    let (Some('{'), Some(Some(end))) = (chars.get(k), closer.get(k)) else {
        return j;
    };
    let raw: String = chars[k + 1..*end].iter().map(|&c| if c == '~' { ' ' } else { c }).collect();
    let content = clean_text(&raw);
    if !content.is_empty() && content.chars().all(|c| c.is_ascii_digit() || c == '.') {
        out.push(Kind::Num(content));
    } else if !content.is_empty() {
        out.push(Kind::Text(content));
    } else {
        out.space = true;
    }
    end + 1
}

/// Drops nested LaTeX noise (`\,`, braces, `$`) from text and collapses whitespace.
fn clean_text(raw: &str) -> String {
    let mut s = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if chars.peek().is_some_and(|c| !c.is_ascii_alphabetic()) {
                    chars.next();
                    s.push(' ');
                }
            }
            '{' | '}' | '$' => {}
            c => s.push(c),
        }
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `\begin{pmatrix}` → Begin("pmatrix"); an `array`'s column spec `{cc}` is skipped.
fn lex_env(chars: &[char], j: usize, closer: &[Option<usize>], begin: bool, out: &mut Lexed) -> usize {
    let k = skip_spaces(chars, j);
    let (Some('{'), Some(Some(end))) = (chars.get(k), closer.get(k)) else {
        return j;
    };
    let name: String = chars[k + 1..*end].iter().filter(|c| !c.is_whitespace()).collect();
    let mut next = end + 1;
    if begin && name == "array" {
        let k2 = skip_spaces(chars, next);
        if let (Some('{'), Some(Some(e2))) = (chars.get(k2), closer.get(k2)) {
            next = e2 + 1;
        }
    }
    out.push(if begin { Kind::Begin(name) } else { Kind::End(name) });
    next
}

/// `^\circ`, `^{\circ}` → Degree; `^\prime`, `^{\prime\prime}`, `^{\prime \prime}`, `^{''}` →
/// `'` marks; else a plain `^`. Matched in place on the chars: no allocation per caret.
fn lex_caret(chars: &[char], i: usize, out: &mut Lexed) -> usize {
    let after = skip_spaces(chars, i + 1);
    if let Some((marks, end)) = braced_primes(chars, after) {
        for _ in 0..marks {
            out.push(Kind::Sym('\''));
        }
        return end;
    }
    for (pat, kind) in [("\\circ", Kind::Degree), ("\\prime", Kind::Sym('\''))] {
        let len = pat.chars().count();
        let word_ends = |at: usize| !chars.get(at).is_some_and(|c| c.is_ascii_alphabetic());
        let end = if starts_with(chars, after, pat) && word_ends(after + len) {
            Some(after + len)
        } else if chars.get(after) == Some(&'{') {
            let inner = skip_spaces(chars, after + 1);
            let close = skip_spaces(chars, inner + len);
            (starts_with(chars, inner, pat) && chars.get(close) == Some(&'}')).then_some(close + 1)
        } else {
            None
        };
        if let Some(end) = end {
            out.push(kind);
            return end;
        }
    }
    out.push(Kind::Sym('^'));
    i + 1
}

/// `{\prime\prime}`, `{\prime \prime}` or `{''}` at `at`: how many marks, and the index after
/// the closing brace.
fn braced_primes(chars: &[char], at: usize) -> Option<(usize, usize)> {
    if chars.get(at) != Some(&'{') {
        return None;
    }
    let (mut k, mut marks) = (skip_spaces(chars, at + 1), 0);
    loop {
        if chars.get(k) == Some(&'\'') {
            k += 1;
        } else if starts_with(chars, k, "\\prime") && !chars.get(k + 6).is_some_and(|c| c.is_ascii_alphabetic()) {
            k += 6;
        } else {
            break;
        }
        marks += 1;
        k = skip_spaces(chars, k);
    }
    (marks > 0 && chars.get(k) == Some(&'}')).then_some((marks, k + 1))
}

/// Digits, `{,}` / `,\!` thousands groups, one decimal point, then an `e±N` exponent when no
/// letter follows it (`4.5e33`, but `2e^{x}` is 2·e^x).
fn lex_number(chars: &[char], i: usize, out: &mut Lexed) -> usize {
    let mut s = String::new();
    let mut j = i;
    let mut seen_dot = false;
    loop {
        match chars.get(j) {
            Some(&d) if d.is_ascii_digit() => {
                s.push(d);
                j += 1;
            }
            Some('.') if !seen_dot && chars.get(j + 1).is_some_and(|d| d.is_ascii_digit()) => {
                seen_dot = true;
                s.push('.');
                j += 1;
            }
            Some('{') if !seen_dot && starts_with(chars, j, "{,}") && digit_at(chars, j + 3) => {
                j += 3;
            }
            Some(',') if !seen_dot && starts_with(chars, j, ",\\!") => {
                let k = skip_spaces(chars, j + 3);
                if !digit_at(chars, k) {
                    break;
                }
                j = k;
            }
            // `1./3`: a bare trailing point before an operator is still part of the number.
            Some('.') if !seen_dot && matches!(chars.get(j + 1), Some('/' | '*' | ')' | '^' | '+' | '-')) => {
                seen_dot = true;
                j += 1;
            }
            _ => break,
        }
    }
    if let Some(end) = exponent_end(chars, j) {
        s.extend(chars[j..end].iter());
        j = end;
    }
    out.push(Kind::Num(s));
    j
}

fn starts_with(chars: &[char], at: usize, pat: &str) -> bool {
    pat.chars().enumerate().all(|(k, p)| chars.get(at + k) == Some(&p))
}

fn digit_at(chars: &[char], k: usize) -> bool {
    chars.get(k).is_some_and(|d| d.is_ascii_digit())
}

fn exponent_end(chars: &[char], j: usize) -> Option<usize> {
    if !matches!(chars.get(j), Some('e' | 'E')) {
        return None;
    }
    let mut k = j + 1;
    if matches!(chars.get(k), Some('+' | '-')) {
        k += 1;
    }
    if !digit_at(chars, k) {
        return None;
    }
    while digit_at(chars, k) {
        k += 1;
    }
    if chars.get(k).is_some_and(|c| c.is_alphabetic()) {
        return None;
    }
    Some(k)
}

fn lex_letters(chars: &[char], i: usize, out: &mut Lexed) -> usize {
    let mut j = i;
    while j < chars.len() && chars[j].is_ascii_alphabetic() {
        j += 1;
    }
    let word: String = chars[i..j].iter().collect();
    let lower = word.to_ascii_lowercase();
    if word.len() == 1 && out.upright_until.is_empty() {
        out.push(Kind::Letter(chars[i]));
    } else if FUNCTION_WORDS.contains(&word.as_str()) {
        out.push(Kind::Cmd(word));
    } else if matches!(lower.as_str(), "inf" | "infty" | "infinity") {
        out.push(Kind::Cmd("infty".into()));
    } else if lower == "nan" {
        out.push(Kind::Cmd("nan".into()));
    } else if word == "pi" {
        out.push(Kind::Cmd("pi".into()));
    } else {
        out.push(Kind::Word(word));
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Kind> {
        lex(s).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn drops_layout() {
        assert_eq!(kinds("\\left( 3 \\right)"), kinds("(3)"));
        assert_eq!(kinds("$\\dfrac{1}{2}$"), kinds("\\frac{1}{2}"));
        assert_eq!(kinds("\\mathrm{cm}"), vec![Kind::Word("cm".into())]);
        assert_eq!(kinds("\\left.x\\right|"), vec![Kind::Letter('x'), Kind::Sym('|')]);
    }

    #[test]
    fn numbers() {
        assert_eq!(kinds("10,\\!080"), vec![Kind::Num("10080".into())]);
        assert_eq!(kinds("11,\\! 111,\\! 111"), vec![Kind::Num("11111111".into())]);
        assert_eq!(kinds("1{,}000"), vec![Kind::Num("1000".into())]);
        assert_eq!(kinds("4.5e33"), vec![Kind::Num("4.5e33".into())]);
        assert_eq!(kinds("2e^x")[..2], [Kind::Num("2".into()), Kind::Letter('e')]);
        assert_eq!(kinds(".5"), vec![Kind::Num(".5".into())]);
        assert_eq!(kinds("5."), vec![Kind::Num("5".into()), Kind::Sym('.')]);
    }

    #[test]
    fn markers_and_text() {
        assert_eq!(kinds("30^\\circ"), vec![Kind::Num("30".into()), Kind::Degree]);
        assert_eq!(kinds("30^{ \\circ }"), vec![Kind::Num("30".into()), Kind::Degree]);
        assert_eq!(kinds("50\\%"), vec![Kind::Num("50".into()), Kind::Percent]);
        assert_eq!(kinds("\\text{ cents}"), vec![Kind::Text("cents".into())]);
        assert_eq!(kinds("y^{\\prime}"), vec![Kind::Letter('y'), Kind::Sym('\'')]);
        let arcseconds = vec![Kind::Num("2".into()), Kind::Sym('\''), Kind::Sym('\'')];
        assert_eq!(kinds("2^{\\prime\\prime}"), arcseconds);
        assert_eq!(kinds("2^{ \\prime \\prime }"), arcseconds);
        assert_eq!(kinds("2^{''}"), arcseconds);
        assert_eq!(kinds("2''"), arcseconds);
        assert_eq!(kinds("2^{\\primes}")[1], Kind::Sym('^'));
    }

    #[test]
    fn unbalanced_and_odd_input_does_not_panic() {
        for s in ["\\", "{", "}", "\\text{", "\\mathrm{", "^", "\\begin{", "1,\\!", "1{,}", "é\\ü"] {
            let _ = lex(s);
        }
    }
}
