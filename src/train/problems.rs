//! Training and held-out problems for `srlm train`: the synthetic arithmetic task or a
//! GSM8K-layout JSONL, rendered in the configured prompt format through the chat template.

use std::path::Path;

use anyhow::{Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::algo::sft_data::{gsm8k_solution, read_jsonl};
use crate::chat::{ChatTemplate, Message};
use crate::synthetic::arithmetic_problems;
use crate::train::config::TrainConfig;
use crate::train::heldout::TrainingProblem;

/// The R1-style system prompt the format reward trains for.
pub const R1_SYSTEM_PROMPT: &str = "A conversation between User and Assistant. The user asks a question, and the \
Assistant solves it. The assistant first thinks about the reasoning process in the mind and then provides the user \
with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, \
respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>.";
/// The instruction of the published evaluations, appended to the question.
pub const BOXED_INSTRUCTION: &str = "Please reason step by step, and put your final answer within \\boxed{}.";

/// The prompt turns of `question` in `format` (plain, r1, boxed).
pub fn prompt_messages(question: &str, format: &str) -> Vec<Message> {
    match format {
        "r1" => vec![Message::new("system", R1_SYSTEM_PROMPT), Message::new("user", question)],
        "boxed" => vec![Message::new("user", format!("{question}\n{BOXED_INSTRUCTION}"))],
        _ => vec![Message::new("user", question)],
    }
}

fn problem(template: &ChatTemplate, question: &str, format: &str, gold: String, solution: Option<String>) -> Result<TrainingProblem> {
    let messages = prompt_messages(question, format);
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
                    .map(|p| problem(template, &p.question, &d.format, p.answer.to_string(), Some(p.solution())))
                    .collect()
            };
            // Held-out problems come from a different seed; any coincidences are rare and harmless.
            Ok((make(d.train_size, cfg.seed)?, make(d.heldout_size, cfg.seed ^ 0x5eed_4e1d)?))
        }
        _ => {
            let train_path = d.train.as_deref().expect("validated: gsm8k has a train path");
            let mut train = gsm8k_file(train_path, template, &d.format)?;
            train.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed));
            let heldout = match &d.heldout {
                Some(path) => gsm8k_file(path, template, &d.format)?.into_iter().take(d.heldout_size).collect(),
                None => train.split_off(train.len().saturating_sub(d.heldout_size)),
            };
            train.truncate(d.train_size.max(1));
            Ok((train, heldout))
        }
    }
}

fn gsm8k_file(path: &Path, template: &ChatTemplate, format: &str) -> Result<Vec<TrainingProblem>> {
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
