//! Fuzzing entry: arbitrary bytes → every public parser and comparison, each call timed.
//!
//! Shared by `fuzz/fuzz_targets/answer_parser.rs` (cargo-fuzz) and the stable generator in
//! `adversarial_tests.rs`. Bytes after the first NUL (if any) are used as the gold answer.

use std::time::{Duration, Instant};

use crate::accuracy::{answers_match, grade};
use crate::benchmark::Benchmark;
use crate::extract::extract_answer;
use crate::format::{format_score, FormatMode};
use crate::gold::Gold;

/// The slowest single call made by [`exercise`], and what it was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slowest {
    pub call: &'static str,
    pub took: Duration,
}

/// Runs extraction, gold parsing, matching, grading and format scoring on `data`.
pub fn exercise(data: &[u8]) -> Slowest {
    let text = String::from_utf8_lossy(data);
    let (completion, gold_text) = match text.split_once('\0') {
        Some((c, g)) => (c, g),
        None => (text.as_ref(), text.as_ref()),
    };
    let mut slowest = Slowest { call: "none", took: Duration::ZERO };
    let mut timed = |call: &'static str, f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        let took = start.elapsed();
        if took > slowest.took {
            slowest = Slowest { call, took };
        }
    };
    for b in Benchmark::ALL {
        timed("extract_answer", &mut || {
            let _ = extract_answer(completion, &b.extract_config());
        });
    }
    for mode in [FormatMode::Lenient, FormatMode::Strict, FormatMode::Soft] {
        timed("format_score", &mut || {
            let _ = format_score(completion, mode);
        });
    }
    timed("Gold::gsm8k", &mut || {
        let _ = Gold::gsm8k(gold_text);
    });
    timed("Gold::minerva", &mut || {
        let _ = Gold::minerva(gold_text);
    });
    let mut gold = None;
    timed("Gold::latex", &mut || gold = Gold::latex(gold_text).ok());
    let Some(gold) = gold else { return slowest };
    timed("answers_match", &mut || {
        let _ = answers_match(completion, &gold);
    });
    timed("answers_match(self)", &mut || {
        let _ = answers_match(gold_text, &gold);
    });
    for b in [Benchmark::Gsm8k, Benchmark::Math500] {
        timed("grade", &mut || {
            let _ = grade(b, completion, &gold);
        });
    }
    slowest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exercises_without_panicking() {
        for data in [&b""[..], b"\0", b"\xff\xfe\0\xff", b"\\boxed{1}\0 1", b"<answer>x</answer>\0x"] {
            assert!(exercise(data).took < Duration::from_secs(1));
        }
    }
}
