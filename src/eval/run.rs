//! Running one benchmark: problems → prompts → completions (batched when k = 1, a group of k
//! otherwise) → graded records appended to the log, skipping problems the log already holds.

use std::time::Instant;

use super::log::{CompletionLog, CompletionRecord};
use super::report::EvalSettings;
use super::EvalError;
use crate::data::Problem;
use crate::generate::{generate_batch, generate_group, Completion, GenerationConfig};
use crate::model::Qwen2;
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
    pub model: &'a Qwen2,
    pub tokenizer: &'a Tokenizer,
    pub settings: &'a EvalSettings,
    /// Prompts generated together when k = 1.
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
        let chunk = if k == 1 { self.batch_size.max(1) } else { 1 };
        for batch in pending.chunks(chunk) {
            let texts = batch
                .iter()
                .map(|&i| self.settings.format.render(&template, &problems[i].question))
                .collect::<Result<Vec<_>, _>>()?;
            let prompts = texts.iter().map(|t| self.tokenizer.encode(t, false)).collect::<Result<Vec<_>, _>>()?;
            let start = Instant::now();
            // Sample s of problem i draws from stream i·k + s, whether batched or grouped.
            let completions: Vec<Vec<Completion>> = if k == 1 {
                let streams: Vec<u64> = batch.iter().map(|&i| i as u64).collect();
                generate_batch(self.model, self.tokenizer, &prompts, &streams, &cfg, |_, _| {})?
                    .into_iter()
                    .map(|c| vec![c])
                    .collect()
            } else {
                vec![generate_group(self.model, self.tokenizer, &prompts[0], k, (batch[0] * k) as u64, &cfg, |_, _| {})?]
            };
            let seconds = start.elapsed().as_secs_f64() / (batch.len() * k) as f64;
            for ((&index, samples), prompt) in batch.iter().zip(completions).zip(texts) {
                let records = grade_samples(&problems[index], index, &prompt, samples, seconds);
                count(&mut state, &records);
                log.append(records)?;
                progress(state);
            }
        }
        let records = problems
            .iter()
            .enumerate()
            .flat_map(|(i, p)| log.finished(p.benchmark, i).unwrap_or(&[]).to_vec())
            .collect();
        Ok((records, resumed))
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
