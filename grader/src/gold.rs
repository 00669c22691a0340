//! Gold answers: each benchmark's answer field → [`Gold`], parsed once per problem.
//!
//! | benchmark | field | constructor |
//! | --- | --- | --- |
//! | GSM8K | `answer`, ends with `#### N` | [`Gold::gsm8k`] |
//! | MATH500 | `answer` (LaTeX) | [`Gold::latex`] |
//! | Minerva | last `\boxed{}` of `solution` | [`Gold::minerva`] |
//! | OlympiadBench | `final_answer` list; every part must be matched | [`Gold::list`] |
//! | AMC23 | `answer` (a JSON number) | [`Gold::number`] |

use crate::answer::{parse_answer, Answer};
use crate::extract::{last_boxed, tail};
use crate::limits::{MAX_ANSWER_BYTES, MAX_SEARCH_BYTES};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GoldError {
    #[error("gold answer is empty")]
    Empty,
    #[error("gold answer is {len} bytes, over the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    #[error("GSM8K answer has no '#### N' line: {snippet:?}")]
    MissingHashes { snippet: String },
    #[error("gold '{text}' is not a number")]
    NotANumber { text: String },
    #[error("Minerva solution has no \\boxed{{}} answer: {snippet:?}")]
    NoBoxed { snippet: String },
    #[error("{benchmark} row has no usable '{field}' field")]
    MissingField { benchmark: &'static str, field: &'static str },
}

/// A problem's reference answer, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Gold {
    /// The answer as written in the data (parts joined by ", "), for logs and metrics.
    pub raw: String,
    pub answer: Answer,
    /// The gold is a plain number (GSM8K, AMC): a prediction that does not match as a whole
    /// is retried by its last number, so `72 apples in total` earns credit for 72.
    pub numeric: bool,
}

impl Gold {
    /// A LaTeX (or plain) answer such as MATH500's `answer` field.
    pub fn latex(ans: &str) -> Result<Gold, GoldError> {
        let raw = ans.trim();
        if raw.is_empty() {
            return Err(GoldError::Empty);
        }
        if raw.len() > MAX_ANSWER_BYTES {
            return Err(GoldError::TooLong { len: raw.len(), max: MAX_ANSWER_BYTES });
        }
        let answer = parse_answer(raw);
        if matches!(&answer, Answer::Text(t) if t.is_empty()) {
            return Err(GoldError::Empty);
        }
        Ok(Gold { raw: raw.to_string(), answer, numeric: false })
    }

    /// GSM8K's `answer` field: the worked solution ending in `#### N` (searched in its last
    /// 64 KiB, like completions).
    pub fn gsm8k(field: &str) -> Result<Gold, GoldError> {
        let end = tail(field, MAX_SEARCH_BYTES);
        let at = end.rfind("####").ok_or_else(|| GoldError::MissingHashes { snippet: snippet(field) })?;
        let text = end.get(at + 4..).unwrap_or("").trim();
        let cleaned: String = text.chars().filter(|c| !matches!(c, ',' | '$' | ' ')).collect();
        let value: f64 = cleaned.parse().map_err(|_| GoldError::NotANumber { text: text.to_string() })?;
        if !value.is_finite() || !cleaned.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.') {
            return Err(GoldError::NotANumber { text: text.to_string() });
        }
        let mut gold = Gold::latex(&cleaned)?;
        gold.raw = text.to_string();
        gold.numeric = true;
        Ok(gold)
    }

    /// A numeric answer such as AMC23's `27.0`; integral values are written without `.0`.
    pub fn number(value: f64) -> Result<Gold, GoldError> {
        if !value.is_finite() {
            return Err(GoldError::NotANumber { text: value.to_string() });
        }
        let mut gold = Gold::latex(&format_number(value))?;
        gold.numeric = true;
        Ok(gold)
    }

    /// The last `\boxed{}` of a worked solution (Minerva).
    pub fn minerva(solution: &str) -> Result<Gold, GoldError> {
        let boxed = last_boxed(tail(solution, MAX_SEARCH_BYTES)).ok_or_else(|| GoldError::NoBoxed { snippet: snippet(solution) })?;
        Gold::latex(&boxed)
    }

    /// A list of answer parts (OlympiadBench `final_answer`): a multi-part answer is matched
    /// only when every part is, in any order.
    pub fn list<S: AsRef<str>>(parts: &[S]) -> Result<Gold, GoldError> {
        let golds: Vec<Gold> = parts.iter().map(|p| Gold::latex(p.as_ref())).collect::<Result<_, _>>()?;
        let mut golds = golds.into_iter();
        match (golds.next(), golds.len()) {
            (None, _) => Err(GoldError::Empty),
            (Some(one), 0) => Ok(one),
            (Some(first), _) => {
                let all: Vec<Gold> = std::iter::once(first).chain(golds).collect();
                let raw = all.iter().map(|g| g.raw.as_str()).collect::<Vec<_>>().join(", ");
                let mut items = Vec::new();
                for g in all {
                    match g.answer {
                        Answer::Set(inner) => items.extend(inner),
                        a => items.push(a),
                    }
                }
                Ok(Gold { raw, answer: Answer::Set(items), numeric: false })
            }
        }
    }
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn snippet(s: &str) -> String {
    s.chars().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm8k_field() {
        let g = Gold::gsm8k("She has 3+4=<<3+4=7>>7.\n#### 7").unwrap();
        assert!(g.numeric);
        assert_eq!(g.raw, "7");
        assert!(Gold::gsm8k("#### 1,080").is_ok());
        assert!(matches!(Gold::gsm8k("no hashes"), Err(GoldError::MissingHashes { .. })));
        assert!(matches!(Gold::gsm8k("#### seven"), Err(GoldError::NotANumber { .. })));
        assert!(matches!(Gold::gsm8k("#### NaN"), Err(GoldError::NotANumber { .. })));
        assert!(matches!(Gold::gsm8k("#### inf"), Err(GoldError::NotANumber { .. })));
    }

    #[test]
    fn gold_is_shareable_across_scorer_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Gold>();
    }

    #[test]
    fn other_constructors() {
        assert_eq!(Gold::number(27.0).unwrap().raw, "27");
        assert!(Gold::number(f64::NAN).is_err());
        assert_eq!(Gold::minerva("so $\\boxed{1.6}$ cm").unwrap().raw, "1.6");
        assert!(matches!(Gold::minerva("no box"), Err(GoldError::NoBoxed { .. })));
        assert_eq!(Gold::latex("  "), Err(GoldError::Empty));
        assert!(matches!(Gold::list(&["1", "2"]).unwrap().answer, Answer::Set(v) if v.len() == 2));
        assert!(Gold::list::<&str>(&[]).is_err());
    }
}
