//! Training and held-out problems for `srlm train`: the synthetic arithmetic task or a
//! GSM8K-layout JSONL, rendered in the configured prompt format (`data::prompt`, the prompts
//! every command renders) through the chat template.

use std::path::Path;

use anyhow::{Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::algo::sft_data::{gsm8k_solution, read_jsonl};
use crate::chat::ChatTemplate;
use crate::data::PromptFormat;
use crate::synthetic::arithmetic_problems;
use crate::train::config::TrainConfig;
use crate::train::heldout::TrainingProblem;

fn problem(template: &ChatTemplate, question: &str, format: PromptFormat, gold: String, solution: Option<String>) -> Result<TrainingProblem> {
    let messages = format.messages(question);
    let prompt = template.render(&messages, true)?;
    Ok(TrainingProblem { messages, prompt, gold, solution })
}

/// (train, held-out) problems as the config's `[data]` section describes.
pub fn load_problems(cfg: &TrainConfig, template: &ChatTemplate) -> Result<(Vec<TrainingProblem>, Vec<TrainingProblem>)> {
    let d = &cfg.data;
    match d.task.as_str() {
        "arithmetic" => {
            let make = |n, seed| -> Result<Vec<TrainingProblem>> {
                arithmetic_problems(n, d.max_operand, seed)
                    .into_iter()
                    .map(|p| problem(template, &p.question, d.format, p.answer.to_string(), Some(p.solution())))
                    .collect()
            };
            // Held-out problems come from a different seed; any coincidences are rare and harmless.
            Ok((make(d.train_size, cfg.seed)?, make(d.heldout_size, cfg.seed ^ 0x5eed_4e1d)?))
        }
        _ => {
            let train_path = d.train.as_deref().expect("validated: gsm8k has a train path");
            let mut train = gsm8k_file(train_path, template, d.format)?;
            train.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed));
            let heldout = match &d.heldout {
                Some(path) => gsm8k_file(path, template, d.format)?.into_iter().take(d.heldout_size).collect(),
                None => train.split_off(train.len().saturating_sub(d.heldout_size)),
            };
            train.truncate(d.train_size.max(1));
            Ok((train, heldout))
        }
    }
}

fn gsm8k_file(path: &Path, template: &ChatTemplate, format: PromptFormat) -> Result<Vec<TrainingProblem>> {
    let rows = read_jsonl(path, |row| {
        let field = |k: &str| row.get(k).and_then(|v| v.as_str()).map(str::to_string).ok_or(format!("missing string field '{k}'"));
        Ok((field("question")?, field("answer")?))
    })?;
    rows.into_iter()
        .enumerate()
        .map(|(i, (question, answer))| {
            let solution = gsm8k_solution(&answer).ok();
            problem(template, &question, format, answer, solution).with_context(|| format!("{}: row {}", path.display(), i + 1))
        })
        .collect()
}
