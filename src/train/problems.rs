//! Training and held-out problems for `srlm train`: the synthetic arithmetic task or a
//! GSM8K-layout JSONL, rendered in the configured prompt format (`data::prompt`, the prompts
//! every command renders) through the chat template.

use std::path::Path;

use anyhow::{Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::chat::ChatTemplate;
use crate::data::{check_question_length, PromptFormat};
use crate::learner::sft_data::{gsm8k_solution, read_jsonl, DataError};
use crate::rewarder::GoldFormat;
use crate::synthetic::arithmetic_problems;
use crate::train::config::TrainConfig;
use crate::train::heldout::TrainingProblem;

fn problem(
    template: &ChatTemplate,
    question: &str,
    format: PromptFormat,
    gold: String,
    solution: Option<String>,
) -> Result<TrainingProblem> {
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
        crate::train::config::NO_TASK => Ok((Vec::new(), Vec::new())),
        _ => {
            let train_path = d.train.as_deref().expect("validated: gsm8k has a train path");
            let mut train = gsm8k_file(train_path, template, d.format, d.gold)?;
            train.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed));
            let heldout = match &d.heldout {
                Some(path) => gsm8k_file(path, template, d.format, d.gold)?.into_iter().take(d.heldout_size).collect(),
                None => train.split_off(train.len().saturating_sub(d.heldout_size)),
            };
            train.truncate(d.train_size.max(1));
            Ok((train, heldout))
        }
    }
}

/// A GSM8K-layout JSONL's problems in file order, rendered as the training problems are.
pub fn gsm8k_file(path: &Path, template: &ChatTemplate, format: PromptFormat, gold: GoldFormat) -> Result<Vec<TrainingProblem>> {
    gsm8k_rows(path, gold)?
        .into_iter()
        .enumerate()
        .map(|(i, (question, answer))| {
            let solution = gsm8k_solution(&answer, format).ok();
            problem(template, &question, format, answer, solution).with_context(|| format!("{}: row {}", path.display(), i + 1))
        })
        .collect()
}

/// (question, answer) of each row of a GSM8K-layout JSONL. Every gold is parsed and every
/// question's length checked here, so a bad row is an error naming its line before any model
/// loads, not a scorer failing on it mid-run.
pub fn gsm8k_rows(path: &Path, gold: GoldFormat) -> Result<Vec<(String, String)>, DataError> {
    read_jsonl(path, |row| {
        let field = |k: &str| row.get(k).and_then(|v| v.as_str()).map(str::to_string).ok_or(format!("missing string field '{k}'"));
        let (question, answer) = (field("question")?, field("answer")?);
        check_question_length(&question)?;
        gold.parse(&answer).map_err(|e| format!("'answer': {e} (data.gold = \"{}\")", gold.name()))?;
        Ok((question, answer))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::MAX_QUESTION_CHARS;

    fn rows_of(text: &str, gold: GoldFormat) -> Result<Vec<(String, String)>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.jsonl");
        std::fs::write(&path, text).unwrap();
        gsm8k_rows(&path, gold).map_err(|e| e.to_string())
    }

    #[test]
    fn an_unparsable_gold_is_refused_with_its_line() {
        let good = "{\"question\": \"1+1?\", \"answer\": \"one and one #### 2\"}\n";
        let bad = "{\"question\": \"2+2?\", \"answer\": \"four, no hashes\"}\n";
        assert_eq!(rows_of(&format!("{good}{good}"), GoldFormat::Gsm8k).unwrap().len(), 2);
        let err = rows_of(&format!("{good}\n{bad}"), GoldFormat::Gsm8k).unwrap_err();
        assert!(err.contains("train.jsonl:3: 'answer': gold 'four, no hashes': GSM8K answer has no '#### N' line"), "{err}");
        let err = rows_of(good, GoldFormat::Number).unwrap_err();
        assert!(err.contains("train.jsonl:1:") && err.contains("data.gold = \"number\""), "{err}");
    }

    #[test]
    fn an_over_long_question_is_refused_with_its_line() {
        let question = "9".repeat(MAX_QUESTION_CHARS + 1);
        let err = rows_of(&format!("{{\"question\": \"{question}\", \"answer\": \"#### 2\"}}\n"), GoldFormat::Gsm8k).unwrap_err();
        assert!(err.contains("train.jsonl:1: question is 262145 characters"), "{err}");
    }
}
