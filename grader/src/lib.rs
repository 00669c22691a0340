//! Rewards: completion + [`Gold`] → score. The principal types are the [`Reward`] trait,
//! [`WeightedRewards`] (total plus per-reward values for metrics) and the math checker
//! behind [`grade`].
//!
//! Data flow of the checker: completion → [`extract_answer`] (last 64 KiB; `<answer>` tag,
//! `\boxed{}`, last number) → [`answer::parse_answer`] (lexer → structure → expression
//! parser) → [`math_equiv::equivalent`] against the gold parsed once by [`Gold`]; a completion
//! whose other boxes or tags state a different answer is wrong ([`commitments`]).
//! Everything here is pure, never panics on any `&str`, and is bounded in time and depth
//! (see [`limits`]). Model output is parsed, never executed.

pub mod accuracy;
pub mod answer;
pub mod benchmark;
pub mod boxed_accuracy;
pub mod boxed_format;
pub mod commitments;
pub mod eval;
pub mod expr;
pub mod extract;
pub mod format;
pub mod fuzzing;
pub mod gold;
pub mod interval;
pub mod lexer;
pub mod limits;
pub mod math_equiv;
pub mod named;
pub mod parse_expr;
pub mod registry;
pub mod signature;
pub mod weighted;

#[cfg(test)]
mod adversarial_tests;
#[cfg(test)]
mod strict_table_tests;
#[cfg(test)]
mod table_tests;

pub use accuracy::{answers_match, grade, grade_with, AccuracyReward, Verdict};
pub use benchmark::{Benchmark, UnknownBenchmark};
pub use extract::{extract_answer, extract_answer_from_bytes, ExtractConfig, Strategy};
pub use format::{format_score, FormatMode, FormatReward};
pub use gold::{Gold, GoldError};
pub use registry::{build_rewards, parse_reward_spec, reward_by_name, RegistryError, REWARD_NAMES};
pub use weighted::{RewardBreakdown, RewardPart, WeightedRewards};

/// A scoring function of one completion against its problem's gold answer.
pub trait Reward: Send + Sync {
    /// The registry name, also the metric label (`accuracy`, `format`, …).
    fn name(&self) -> &str;
    fn score(&self, completion: &str, gold: &Gold) -> f32;
}

/// Grades raw bytes (lossy UTF-8): the fuzzing entry point, and safe for any tokenizer output.
pub fn grade_bytes(benchmark: Benchmark, completion: &[u8], gold: &Gold) -> Verdict {
    grade(benchmark, &String::from_utf8_lossy(completion), gold)
}
