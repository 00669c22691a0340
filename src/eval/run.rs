//! Running one benchmark: problems → prompts → groups of k completions, `batch_size` groups in
//! flight (continuous batching: a finished group's rows go to the next problem) → graded records
//! appended to the log as each group finishes, skipping problems the log already holds.

use std::time::Instant;

use super::log::{CompletionLog, CompletionRecord};
use super::report::EvalSettings;
use super::EvalError;
use crate::data::Problem;
use crate::generate::continuous::generate_groups;
use crate::generate::memory::check_fits;
use crate::generate::{Completion, GenerationConfig};
use crate::model::CausalLm;
use crate::reward::grade;
use crate::sampling::{SamplingParams, StopStrings};
use crate::tokenizer::Tokenizer;

/// How far a benchmark has got, after each problem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub correct: usize,
    pub samples: usize,
}

/// The model and tokenizer an evaluation generates with.
pub struct Evaluator<'a> {
    pub model: &'a dyn CausalLm,
    pub tokenizer: &'a Tokenizer,
    pub settings: &'a EvalSettings,
    /// Groups (problems) decoding at once.
    pub batch_size: usize,
}

impl Evaluator<'_> {
    pub fn generation_config(&self) -> GenerationConfig {
        let s = self.settings;
        GenerationConfig {
            sampling: SamplingParams { temperature: s.temperature, top_p: s.top_p, top_k: 0, greedy: s.greedy },
            max_new_tokens: s.max_new_tokens,
            min_new_tokens: 0,
            eos_ids: self.tokenizer.eos_token_ids().to_vec(),
            stop: StopStrings::default(),
            seed: s.seed,
        }
    }

    /// Generates and grades every problem the log lacks; returns all records of `problems`
    /// in problem order, and how many problems came from the log.
    pub fn run(
        &self,
        problems: &[Problem],
        log: &mut CompletionLog,
        mut progress: impl FnMut(Progress),
    ) -> Result<(Vec<CompletionRecord>, usize), EvalError> {
        let k = self.settings.k;
        let template = self.tokenizer.chat_template()?;
        let mut state = Progress { done: 0, total: problems.len(), correct: 0, samples: 0 };
        let count = |state: &mut Progress, records: &[CompletionRecord]| {
            state.done += 1;
            state.samples += records.len();
            state.correct += records.iter().filter(|r| r.correct).count();
        };
        let mut pending = Vec::new();
        for (index, p) in problems.iter().enumerate() {
            match log.finished(p.benchmark, index) {
                Some(records) => count(&mut state, records),
                None => pending.push(index),
            }
        }
        let resumed = problems.len() - pending.len();
        progress(state);
        let cfg = self.generation_config();
        let prompts =
            pending.iter().map(|&i| self.settings.format.render(&template, &problems[i].question)).collect::<Result<Vec<_>, _>>()?;
        let ids = prompts.iter().map(|t| self.tokenizer.encode(t, false)).collect::<Result<Vec<_>, _>>()?;
        self.check_sizes(problems, &pending, &ids)?;
        // Sample s of problem i draws from stream i·k + s, however many are in flight.
        let streams: Vec<u64> = pending.iter().map(|&i| (i * k) as u64).collect();
        let rows = self.batch_size.max(1) * k;
        let mut last = Instant::now();
        let mut failed = None;
        generate_groups(
            self.model,
            self.tokenizer,
            &ids,
            &streams,
            k,
            rows,
            &cfg,
            |j, samples| {
                // The wall time since the previous group finished, shared among this group's samples.
                let seconds = last.elapsed().as_secs_f64() / k as f64;
                last = Instant::now();
                let index = pending[j];
                let records = grade_samples(&problems[index], index, &prompts[j], samples, seconds);
                count(&mut state, &records);
                if let Err(e) = log.append(records) {
                    failed = Some(e);
                    candle_core::bail!("writing the completion log failed");
                }
                progress(state);
                Ok(())
            },
            |_, _, _| {},
        )
        .map_err(|e| failed.take().unwrap_or(EvalError::from(e)))?;
        let records = problems.iter().enumerate().flat_map(|(i, p)| log.finished(p.benchmark, i).unwrap_or(&[]).to_vec()).collect();
        Ok((records, resumed))
    }
}

impl Evaluator<'_> {
    /// Before any generation: each prompt fits the model's context, and the rows in flight fit
    /// in memory (a failure mid-benchmark would throw away the work before it).
    fn check_sizes(&self, problems: &[Problem], pending: &[usize], ids: &[Vec<u32>]) -> Result<(), EvalError> {
        let cfg = self.model.config();
        let context = cfg.max_position_embeddings;
        if let Some((j, prompt)) = ids.iter().enumerate().find(|(_, p)| p.len() >= context) {
            let p = &problems[pending[j]];
            return Err(EvalError::PromptTooLong { benchmark: p.benchmark.name(), line: p.line, tokens: prompt.len(), context });
        }
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
        let rows = self.batch_size.max(1).min(pending.len()).saturating_mul(self.settings.k);
        let positions = (longest + self.settings.max_new_tokens).min(context);
        check_fits(cfg, self.model.device(), self.model.dtype(), rows, positions)?;
        Ok(())
    }
}

fn grade_samples(problem: &Problem, index: usize, prompt: &str, samples: Vec<Completion>, seconds: f64) -> Vec<CompletionRecord> {
    samples
        .into_iter()
        .enumerate()
        .map(|(sample, c)| {
            let verdict = grade(problem.benchmark, &c.text, &problem.gold);
            CompletionRecord {
                benchmark: problem.benchmark,
                index,
                problem_id: problem.id.clone(),
                sample,
                gold: problem.answer.clone(),
                prompt: prompt.to_string(),
                completion: c.text,
                extracted: verdict.extracted,
                correct: verdict.correct,
                tokens: c.ids.len(),
                finish_reason: c.finish_reason,
                seconds,
            }
        })
        .collect()
}
