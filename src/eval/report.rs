//! The eval report: per benchmark, pass@1 with its Wilson interval and the run's settings.

use serde::{Deserialize, Serialize};

use super::log::CompletionRecord;
use super::wilson::{wilson_interval, Z95};
use crate::data::PromptFormat;
use crate::generate::FinishReason;
use crate::reward::Benchmark;

/// Everything that decides the completions; a resumed run must use the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    pub model: String,
    /// The LoRA adapter over `model`, if any (absent from settings written without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    pub format: PromptFormat,
    /// Samples per problem; pass@1 is their mean.
    pub k: usize,
    pub greedy: bool,
    pub temperature: f32,
    pub top_p: f32,
    pub max_new_tokens: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkReport {
    pub benchmark: Benchmark,
    pub data_file: String,
    /// Problems evaluated.
    pub n: usize,
    pub k: usize,
    /// Correct samples out of n · k.
    pub correct: usize,
    /// pass@1: the mean over problems of the fraction of their k samples that are correct.
    pub accuracy: f64,
    /// 95% Wilson interval over the n · k samples.
    pub ci95: [f64; 2],
    pub mean_completion_tokens: f64,
    /// Samples cut by max_new_tokens.
    pub truncated: usize,
    /// Fraction of samples keeping the prompt format's layout ([`PromptFormat::followed_by`]);
    /// absent for `plain`, which asks for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_compliance: Option<f64>,
    /// Generation time summed over problems, including those logged by earlier runs.
    pub generation_seconds: f64,
    /// Time this invocation spent on the benchmark (loading, generating and grading).
    pub wall_seconds: f64,
    /// Problems taken from the log of an earlier run.
    pub resumed: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub settings: EvalSettings,
    pub benchmarks: Vec<BenchmarkReport>,
}

/// Summarises the records of one benchmark's problems (k per problem).
pub fn summarise(
    benchmark: Benchmark,
    data_file: String,
    format: PromptFormat,
    records: &[CompletionRecord],
    k: usize,
    wall_seconds: f64,
    resumed: usize,
) -> BenchmarkReport {
    let samples = records.len();
    let n = samples.checked_div(k).unwrap_or(0);
    let correct = records.iter().filter(|r| r.correct).count();
    let mean = |total: f64| if samples == 0 { 0.0 } else { total / samples as f64 };
    let (lo, hi) = wilson_interval(correct as f64, samples, Z95);
    BenchmarkReport {
        benchmark,
        data_file,
        n,
        k,
        correct,
        // With k samples for every problem, the mean of per-problem fractions is the sample mean.
        accuracy: mean(correct as f64),
        ci95: [lo, hi],
        mean_completion_tokens: mean(records.iter().map(|r| r.tokens as f64).sum()),
        truncated: records.iter().filter(|r| r.finish_reason == FinishReason::Length).count(),
        format_compliance: format_compliance(format, records),
        generation_seconds: records.iter().map(|r| r.seconds).sum(),
        wall_seconds,
        resumed,
    }
}

fn format_compliance(format: PromptFormat, records: &[CompletionRecord]) -> Option<f64> {
    share_kept(records.iter().map(|r| format.followed_by(&r.completion)))
}

/// The share of `true` among per-sample format verdicts; None when the format asks for none.
pub(crate) fn share_kept(verdicts: impl Iterator<Item = Option<bool>>) -> Option<f64> {
    let kept = verdicts.collect::<Option<Vec<bool>>>()?;
    Some(kept.iter().filter(|&&k| k).count() as f64 / kept.len().max(1) as f64)
}
