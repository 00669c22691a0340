//! Extraction: completion text → the final-answer string, by a configurable list of strategies.
//!
//! Only the last [`MAX_SEARCH_BYTES`] of the completion are searched (cut at a char boundary),
//! so a megabyte completion costs no more than 64 KiB. Every scan is a single linear pass
//! except `\boxed`, which retries at most [`MAX_BOXED_TRIES`] earlier occurrences when the
//! last is unbalanced.

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_BOXED_TRIES, MAX_SEARCH_BYTES};

/// One way of finding the answer; strategies are tried in order and the first hit wins.
/// In configs: `answer_tag`, `boxed`, `hashes`, `phrase`, `last_number`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Content of the last complete `<answer>…</answer>`; a `\boxed{}` inside it wins.
    AnswerTag,
    /// Content of the last balanced `\boxed{…}` / `\fbox{…}`, or `\boxed x` up to whitespace.
    Boxed,
    /// Text after the last `####` up to the end of its line (GSM8K's own layout).
    Hashes,
    /// Text after the last "answer is" / "answer:" up to the end of its sentence or line.
    Phrase,
    /// The last number in the text: `-1,234.5`, `3/4`.
    LastNumber,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtractConfig {
    pub order: Vec<Strategy>,
    pub max_search_bytes: usize,
}

impl Default for ExtractConfig {
    /// `<answer>` tag, else last `\boxed{}`, else the last number.
    fn default() -> Self {
        ExtractConfig { order: vec![Strategy::AnswerTag, Strategy::Boxed, Strategy::LastNumber], max_search_bytes: MAX_SEARCH_BYTES }
    }
}

impl ExtractConfig {
    pub fn new(order: Vec<Strategy>) -> Self {
        ExtractConfig { order, ..ExtractConfig::default() }
    }
}

/// The final answer of `completion`, or None when no strategy finds one.
pub fn extract_answer(completion: &str, cfg: &ExtractConfig) -> Option<String> {
    let text = tail(completion, cfg.max_search_bytes.min(MAX_SEARCH_BYTES));
    // An empty hit (`<answer></answer>`) falls through to the next strategy.
    cfg.order.iter().find_map(|s| run(*s, text).map(|a| clean(&a)).filter(|a| !a.is_empty()))
}

/// Lossy entry point for fuzzing and raw bytes from a tokenizer.
pub fn extract_answer_from_bytes(bytes: &[u8], cfg: &ExtractConfig) -> Option<String> {
    extract_answer(&String::from_utf8_lossy(bytes), cfg)
}

fn run(s: Strategy, text: &str) -> Option<String> {
    match s {
        Strategy::AnswerTag => answer_tag(text),
        Strategy::Boxed => last_boxed(text),
        Strategy::Hashes => text.rfind("####").map(|i| line_after(text, i + 4)),
        Strategy::Phrase => phrase(text),
        Strategy::LastNumber => last_number(text),
    }
}

/// The last `max` bytes of `s`, moved forward to a char boundary.
pub fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while start < s.len() && !s.is_char_boundary(start) {
        start += 1;
    }
    s.get(start..).unwrap_or("")
}

fn line_after(text: &str, from: usize) -> String {
    let rest = text.get(from..).unwrap_or("");
    rest.lines().next().unwrap_or("").to_string()
}

fn answer_tag(text: &str) -> Option<String> {
    answer_tags_from_end(text).next().map(tag_answer)
}

/// Contents of the complete `<answer>…</answer>` tags, the last first.
pub(crate) fn answer_tags_from_end(text: &str) -> impl Iterator<Item = &str> {
    let mut end = text.len();
    std::iter::from_fn(move || {
        let close = text.get(..end)?.rfind("</answer>")?;
        let open = text.get(..close)?.rfind("<answer>")?;
        end = open;
        text.get(open + "<answer>".len()..close)
    })
}

/// The answer an `<answer>` tag's content states: its last box, else its "answer is" phrase,
/// else all of it.
pub(crate) fn tag_answer(content: &str) -> String {
    if has_box(content) {
        if let Some(b) = last_boxed(content) {
            return b;
        }
    }
    phrase(content).unwrap_or_else(|| content.to_string())
}

pub(crate) fn has_box(text: &str) -> bool {
    text.contains("\\boxed") || text.contains("\\fbox")
}

/// Content of the last balanced `\boxed{…}` (or `\fbox{…}`, `\boxed 5`).
pub fn last_boxed(text: &str) -> Option<String> {
    boxes_from_end(text, MAX_BOXED_TRIES).flatten().next()
}

/// The `\boxed`/`\fbox` occurrences of `text`, the last first, at most `tries` of them: the
/// content of each, None where it is unbalanced (a truncated completion).
pub(crate) fn boxes_from_end(text: &str, tries: usize) -> impl Iterator<Item = Option<String>> + '_ {
    let mut end = text.len();
    std::iter::from_fn(move || {
        let hay = text.get(..end)?;
        let (at, name_len) =
            [("\\boxed", 6), ("\\fbox", 5)].iter().filter_map(|(pat, len)| hay.rfind(pat).map(|i| (i, *len))).max_by_key(|(i, _)| *i)?;
        end = at;
        Some(boxed_at(text, at + name_len))
    })
    .take(tries)
}

/// The argument of a `\boxed` whose name ends at byte `from`.
fn boxed_at(text: &str, from: usize) -> Option<String> {
    let rest = text.get(from..)?;
    if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None; // `\boxedfoo` is another command
    }
    let trimmed = rest.trim_start();
    if let Some(body) = trimmed.strip_prefix('{') {
        return balanced(body).map(str::to_string);
    }
    let arg: String = trimmed.chars().take_while(|c| !c.is_whitespace() && *c != '$').collect();
    (!arg.is_empty()).then_some(arg)
}

/// The text up to the `}` that closes an already-opened `{`; escaped braces do not count.
fn balanced(body: &str) -> Option<&str> {
    let mut depth = 1usize;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return body.get(..i);
                }
            }
            _ => {}
        }
    }
    None
}

fn phrase(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let (at, len) = ["answer is", "answer:"].iter().filter_map(|p| lower.rfind(p).map(|i| (i, p.len()))).max_by_key(|(i, _)| *i)?;
    let rest = text.get(at + len..)?.trim_start_matches([':', ' ']);
    let line = rest.lines().next().unwrap_or("");
    // A sentence ends at ". " or a final "."; decimals like "3.5" do not end it.
    let cut = line
        .char_indices()
        .find(|&(i, c)| c == '.' && line.get(i + 1..).is_some_and(|r| r.is_empty() || r.starts_with(' ')))
        .map_or(line.len(), |(i, _)| i);
    let answer = line.get(..cut)?.trim();
    (!answer.is_empty()).then(|| answer.to_string())
}

/// The last number: optional sign, digits with `,ddd` groups, decimals, and `/d` fractions.
/// One forward scan; only the last match is turned into a string.
pub fn last_number(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut last = None;
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() || (b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let end = number_end(b, i);
            last = Some((i, end));
            i = end;
        } else {
            i += 1;
        }
    }
    let (start, end) = last?;
    let negative = start > 0 && b[start - 1] == b'-' && (start < 2 || !(b[start - 2].is_ascii_alphanumeric() || b[start - 2] == b')'));
    let digits: String = ascii(b, start, end).chars().filter(|&c| c != ',').collect();
    Some(if negative { format!("-{digits}") } else { digits })
}

/// End of the number starting at `start`: digits, `,ddd` groups, `.ddd`, `/ddd`.
fn number_end(b: &[u8], start: usize) -> usize {
    let digits = |i: usize| b.get(i..).map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count());
    let n = digits(start);
    let mut i = start + n;
    // Thousands groups ",ddd" not followed by another digit, after at most three digits.
    while n <= 3 && b.get(i) == Some(&b',') && digits(i + 1) == 3 {
        i += 4;
    }
    for sep in [b'.', b'/'] {
        if b.get(i) == Some(&sep) && digits(i + 1) > 0 {
            i += 1 + digits(i + 1);
        }
    }
    i.max(start + 1)
}

/// `b[from..to]` as str; these ranges hold ASCII only, so they are char boundaries.
fn ascii(b: &[u8], from: usize, to: usize) -> &str {
    b.get(from..to).and_then(|r| std::str::from_utf8(r).ok()).unwrap_or("")
}

/// Trims the answer and drops a leading "the answer is"/"final answer:" and a trailing period.
pub(crate) fn clean(a: &str) -> String {
    let mut s = a.trim();
    for prefix in ["the final answer is", "final answer:", "the answer is", "answer:"] {
        if s.len() >= prefix.len() && s.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix)) {
            s = s.get(prefix.len()..).unwrap_or("").trim_start();
        }
    }
    s.trim_end_matches(['.', ' ', '\n']).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Option<String> {
        extract_answer(s, &ExtractConfig::default())
    }

    #[test]
    fn order_of_strategies() {
        assert_eq!(ex("<think>2</think><answer>\\boxed{5}</answer>"), Some("5".into()));
        assert_eq!(ex("<answer>The answer is 72.</answer>"), Some("72".into()));
        assert_eq!(ex("so \\boxed{\\frac{1}{2}} and 7"), Some("\\frac{1}{2}".into()));
        assert_eq!(ex("we get 1,234 apples"), Some("1234".into()));
        assert_eq!(ex("nothing here"), None);
    }

    #[test]
    fn boxed_forms() {
        assert_eq!(last_boxed("\\boxed{a} \\fbox{b}"), Some("b".into()));
        assert_eq!(last_boxed("\\boxed 5$"), Some("5".into()));
        assert_eq!(last_boxed("\\boxed{\\{1,2\\}}"), Some("\\{1,2\\}".into()));
        assert_eq!(last_boxed("\\boxed{1} then \\boxed{2"), Some("1".into()));
        assert_eq!(last_boxed("\\boxed{"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(last_number("x = -5"), Some("-5".into()));
        assert_eq!(last_number("10-3=7"), Some("7".into()));
        assert_eq!(last_number("3/4 cup"), Some("3/4".into()));
        assert_eq!(last_number("$1,000.50 total"), Some("1000.50".into()));
        assert_eq!(last_number("1,2,3"), Some("3".into()));
    }

    #[test]
    fn config_from_json() {
        let cfg: ExtractConfig = serde_json::from_str(r#"{"order": ["boxed", "last_number"]}"#).unwrap();
        assert_eq!(cfg.order, vec![Strategy::Boxed, Strategy::LastNumber]);
        assert_eq!(cfg.max_search_bytes, MAX_SEARCH_BYTES);
    }

    #[test]
    fn tail_respects_char_boundaries() {
        let s = "é".repeat(10);
        assert_eq!(tail(&s, 3), "é");
        assert_eq!(tail("abc", 10), "abc");
    }
}
