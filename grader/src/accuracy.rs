//! Accuracy: extract the final answer, compare it with the gold; 1.0 when they match.

use crate::answer::{parse_answer, Answer};
use crate::benchmark::Benchmark;
use crate::commitments::states_another_answer;
use crate::extract::{extract_answer, last_number, tail, ExtractConfig};
use crate::gold::Gold;
use crate::limits::MAX_ANSWER_BYTES;
use crate::math_equiv::equivalent;
use crate::Reward;

/// What grading found: the extracted answer (None when nothing was found) and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    pub extracted: Option<String>,
    pub correct: bool,
}

/// Whether an extracted answer states the gold answer (see `math_equiv` for the rules).
pub fn answers_match(predicted: &str, gold: &Gold) -> bool {
    let parsed = parse_answer(predicted);
    if equivalent(&parsed, &gold.answer) {
        return true;
    }
    if let Some(value) = without_unit_letter(predicted) {
        if is_constant(&gold.answer) && equivalent(&parse_answer(value), &gold.answer) {
            return true;
        }
    }
    // Numeric golds forgive prose around one number (`She sold 72 clips in total`) by taking
    // its last number. Math (`2^5`, `5x`) and lists (`1, 5`, `6 or 5`) get no second chance.
    if gold.numeric && is_prose(&parsed, predicted) {
        if let Some(n) = last_number(tail(predicted, MAX_ANSWER_BYTES)) {
            return n != predicted.trim() && equivalent(&parse_answer(&n), &gold.answer);
        }
    }
    false
}

/// SI units written as one bare letter: after a number, `5 m` is five metres, not 5·m.
const UNIT_LETTERS: &[char] = &['m', 's', 'g', 'K', 'N', 'J', 'W', 'V', 'A', 'C', 'L', 'T'];

/// `1.2e-10 m`, `5\, s`, `3 m^2`: the value without its trailing unit letter (and a square or
/// cube), when a number or a closing bracket precedes it. Only a gold without variables is
/// compared with it, so against `5m` or `2x` a letter stays a variable.
fn without_unit_letter(predicted: &str) -> Option<&str> {
    let s = predicted.trim_end();
    let s = ["^2", "^3", "^{2}", "^{3}"].iter().find_map(|p| s.strip_suffix(p)).unwrap_or(s);
    let body = s.strip_suffix(UNIT_LETTERS)?;
    let body = body.trim_end_matches([' ', '~']).trim_end_matches("\\,");
    let body = body.trim_end_matches("\\;").trim_end_matches("\\ ").trim_end();
    let before = body.chars().last()?;
    (before.is_ascii_digit() || matches!(before, ')' | '}')).then_some(body)
}

fn is_constant(a: &Answer) -> bool {
    matches!(a, Answer::Scalar(s) if !s.sig.has_vars())
}

/// Unparseable, or a scalar that holds a word of two or more letters outside a command.
fn is_prose(parsed: &Answer, raw: &str) -> bool {
    match parsed {
        Answer::Text(_) => true,
        Answer::Scalar(_) => {
            let mut run = 0;
            let mut after_backslash = false;
            for c in raw.chars() {
                if c.is_ascii_alphabetic() {
                    run += 1;
                    if run >= 2 && !after_backslash {
                        return true;
                    }
                } else {
                    run = 0;
                    after_backslash = c == '\\';
                }
            }
            false
        }
        _ => false,
    }
}

/// Grades a completion with the benchmark's extraction order.
pub fn grade(benchmark: Benchmark, completion: &str, gold: &Gold) -> Verdict {
    grade_with(&benchmark.extract_config(), completion, gold)
}

/// Correct when the extracted answer matches the gold and no other stated answer differs.
pub fn grade_with(cfg: &ExtractConfig, completion: &str, gold: &Gold) -> Verdict {
    let extracted = extract_answer(completion, cfg);
    let correct = extracted.as_deref().is_some_and(|a| answers_match(a, gold)) && !states_another_answer(completion, cfg, gold);
    Verdict { extracted, correct }
}

/// `accuracy`: 1.0 for a correct final answer, else 0.0.
#[derive(Debug, Clone, Default)]
pub struct AccuracyReward {
    config: ExtractConfig,
}

impl AccuracyReward {
    pub fn new(config: ExtractConfig) -> Self {
        AccuracyReward { config }
    }
}

impl Reward for AccuracyReward {
    fn name(&self) -> &str {
        "accuracy"
    }

    fn score(&self, completion: &str, gold: &Gold) -> f32 {
        crate::format::as_score(grade_with(&self.config, completion, gold).correct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm8k_prose_answers() {
        let gold = Gold::gsm8k("... #### 72").unwrap();
        assert!(answers_match("72 apples", &gold));
        assert!(answers_match("She sold 72 clips in total", &gold));
        assert!(!answers_match("72 or 73", &gold));
        assert!(!answers_match("73 or 72", &gold));
        assert!(!answers_match("2^{72}", &gold));
        assert!(!answers_match("\\frac{72}{x}", &gold));
        assert!(is_prose(&parse_answer("72 apples"), "72 apples"));
        assert!(!is_prose(&parse_answer("\\frac{1}{2}"), "\\frac{1}{2}"));
        let v = grade(Benchmark::Gsm8k, "<think>48+24</think>\n<answer>72</answer>", &gold);
        assert_eq!(v, Verdict { extracted: Some("72".into()), correct: true });
        let v = grade(Benchmark::Gsm8k, "no idea", &gold);
        assert_eq!(v, Verdict { extracted: None, correct: false });
    }

    #[test]
    fn reward_scores() {
        let gold = Gold::latex("\\frac{1}{2}").unwrap();
        let r = AccuracyReward::default();
        assert_eq!(r.score("<answer>0.5</answer>", &gold), 1.0);
        assert_eq!(r.score("<answer>2</answer>", &gold), 0.0);
        assert_eq!(r.name(), "accuracy");
    }
}
