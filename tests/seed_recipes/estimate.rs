//! GPU hours of a seed command, from the tokens it generates and trains on (counted from its
//! recipe or flags) at the rates in index.toml's `[estimate]`. Whole training runs are summed,
//! not overlapped: generation and learning share the one GPU.

use std::collections::BTreeMap;

use serde::Deserialize;
use srlm::learner::sft_data::DataFormat;
use srlm::reward::Benchmark;
use srlm::train::config::Stage;

use crate::index::{Command, Index, Recipe};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Estimate {
    pub generation_tokens_per_s: f64,
    pub learner_tokens_per_s: f64,
    pub gsm8k_completion_tokens: f64,
    pub math_completion_tokens: f64,
    pub prompt_tokens: f64,
    pub solution_tokens: f64,
    pub teacher_kept: f64,
    /// Rows of each data set: `gsm8k_train` and the benchmarks by their `Benchmark::name`.
    pub problems: BTreeMap<String, f64>,
}

const SECONDS_PER_HOUR: f64 = 3600.0;

impl Estimate {
    pub fn hours(&self, cmd: &Command, index: &Index) -> f64 {
        let (generated, trained) = self.tokens(cmd, index);
        (generated / self.generation_tokens_per_s + trained / self.learner_tokens_per_s) / SECONDS_PER_HOUR
    }

    /// Tokens generated and tokens trained on (forward and backward) by one command.
    fn tokens(&self, cmd: &Command, index: &Index) -> (f64, f64) {
        match (cmd.subcommand(), cmd.recipe()) {
            ("distill", None) => (self.teacher_samples(cmd) * self.gsm8k_completion_tokens, 0.0),
            ("eval", None) => (self.eval_tokens(cmd), 0.0),
            (_, Some(Recipe::Sft(r))) => {
                let (examples, per_example) = match r.format {
                    DataFormat::Gsm8k => (self.problem_count("gsm8k_train"), self.prompt_tokens + self.solution_tokens),
                    DataFormat::Chat => {
                        let traces = self.teacher_samples(&index.writer_of(&r.data.display().to_string())) * self.teacher_kept;
                        (traces, self.prompt_tokens + self.gsm8k_completion_tokens)
                    }
                };
                (0.0, r.epochs as f64 * examples * per_example)
            }
            (_, Some(Recipe::Train(c))) => {
                assert_eq!(c.stages, [Stage::Grpo], "the estimate knows GRPO-only runs: {}", cmd.line());
                let completions = (c.grpo.steps as usize * c.runtime.pipeline.batch_groups * c.runtime.pipeline.group_size) as f64;
                let generated = completions * self.gsm8k_completion_tokens;
                let trained = completions * (self.prompt_tokens + self.gsm8k_completion_tokens) * c.grpo.algo.iterations as f64;
                (generated, trained)
            }
            _ => panic!("no estimate for: {}", cmd.line()),
        }
    }

    fn teacher_samples(&self, distill: &Command) -> f64 {
        let problems = match distill.flag("--limit") {
            Some(limit) => limit.parse().expect("--limit is a number"),
            None => self.problem_count("gsm8k_train"),
        };
        problems * distill.required("--n").parse::<f64>().expect("--n is a number")
    }

    fn eval_tokens(&self, eval: &Command) -> f64 {
        let k: f64 = eval.required("--k").parse().expect("--k is a number");
        eval.required("--benchmarks")
            .split(',')
            .map(|name| {
                let bench: Benchmark = name.parse().unwrap_or_else(|e| panic!("{e}"));
                let length = if bench == Benchmark::Gsm8k { self.gsm8k_completion_tokens } else { self.math_completion_tokens };
                self.problem_count(bench.name()) * k * length
            })
            .sum()
    }

    fn problem_count(&self, set: &str) -> f64 {
        *self.problems.get(set).unwrap_or_else(|| panic!("[estimate.problems] has no '{set}'"))
    }
}
