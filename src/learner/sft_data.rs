//! SFT data: GSM8K rows or chat JSONL → conversations → (prompt ids, completion ids) through the chat template.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::sft::SftExample;
use crate::chat::{ChatTemplate, Message};
use crate::data::PromptFormat;
use crate::tokenizer::Tokenizer;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {reason}")]
    BadRow { path: PathBuf, line: usize, reason: String },
    #[error("{0}")]
    Template(String),
}

/// How the rows of a JSONL file are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// `{"question", "answer"}` with the worked solution ending in `#### N`.
    Gsm8k,
    /// `{"messages": [{"role", "content"}, …]}`, the last message the assistant's.
    Chat,
}

/// The GSM8K worked solution in `format`'s layout (r1: `<think>\nreasoning\n</think>\n<answer>\nN\n</answer>`),
/// without the calculator annotations `<<48/2=24>>`.
pub fn gsm8k_solution(answer: &str, format: PromptFormat) -> Result<String, String> {
    let (reasoning, final_answer) = answer.rsplit_once("####").ok_or("answer has no '#### N' line")?;
    // As the GSM8K gold is read: thousands separators and currency signs dropped.
    let final_answer: String = final_answer.trim().chars().filter(|c| !matches!(c, ',' | '$')).collect();
    if final_answer.is_empty() {
        return Err("'####' is followed by no answer".into());
    }
    Ok(format.lay_out(&strip_annotations(reasoning), &final_answer))
}

fn strip_annotations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<<") {
        let Some(len) = rest[start..].find(">>") else { break };
        out.push_str(&rest[..start]);
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// One row as a conversation ending with the assistant's answer: a GSM8K row asked and answered
/// in `prompt`'s format (the prompt every command renders), a chat row as it is.
pub fn row_conversation(row: &Value, format: DataFormat, prompt: PromptFormat) -> Result<Vec<Message>, String> {
    match format {
        DataFormat::Gsm8k => {
            let text = |k: &str| row.get(k).and_then(Value::as_str).ok_or(format!("missing string field '{k}'"));
            let mut messages = prompt.messages(text("question")?);
            messages.push(Message::new("assistant", gsm8k_solution(text("answer")?, prompt)?));
            Ok(messages)
        }
        DataFormat::Chat => {
            let messages: Vec<Message> = serde_json::from_value(row.get("messages").cloned().ok_or("missing field 'messages'")?)
                .map_err(|e| format!("field 'messages': {e}"))?;
            match messages.last() {
                Some(m) if m.role == "assistant" => Ok(messages),
                _ => Err("the last message must be the assistant's".into()),
            }
        }
    }
}

/// Every non-blank line of a JSONL file as a conversation; errors name the file and line.
pub fn read_conversations(path: &Path, format: DataFormat, prompt: PromptFormat) -> Result<Vec<Vec<Message>>, DataError> {
    read_jsonl(path, |row| row_conversation(row, format, prompt))
}

/// Every non-blank line of a JSONL file through `parse`; errors name the file and line.
pub fn read_jsonl<T>(path: &Path, mut parse: impl FnMut(&Value) -> Result<T, String>) -> Result<Vec<T>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::Io { path: path.to_path_buf(), source: e })?;
    let bad = |line: usize, reason: String| DataError::BadRow { path: path.to_path_buf(), line, reason };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).map_err(|e| bad(i + 1, format!("not valid JSON: {e}")))?;
        out.push(parse(&row).map_err(|reason| bad(i + 1, reason))?);
    }
    Ok(out)
}

/// Prompt = every message but the last, rendered with the generation prompt; completion = the
/// rest of the full rendering (the answer and the template's end-of-turn tokens).
pub fn tokenize_conversation(messages: &[Message], template: &ChatTemplate, tokenizer: &Tokenizer) -> Result<SftExample, DataError> {
    let Some((_, context)) = messages.split_last() else {
        return Err(DataError::Template("empty conversation".into()));
    };
    let prompt = template.render(context, true).map_err(|e| DataError::Template(e.to_string()))?;
    let full = template.render(messages, false).map_err(|e| DataError::Template(e.to_string()))?;
    let completion = full.strip_prefix(prompt.as_str()).ok_or_else(|| {
        DataError::Template(
            "the chat template renders the conversation with a different prefix than its prompt, \
             so the completion cannot be separated"
                .into(),
        )
    })?;
    let encode = |text: &str| tokenizer.encode(text, false).map_err(|e| DataError::Template(e.to_string()));
    Ok(SftExample { prompt: encode(&prompt)?, completion: encode(completion)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm8k_solution_moves_the_answer_into_tags_and_drops_annotations() {
        let answer = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 clips.\n#### 1,072";
        assert_eq!(
            gsm8k_solution(answer, PromptFormat::R1).unwrap(),
            "<think>\nNatalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips.\n</think>\n<answer>\n1072\n</answer>"
        );
        assert!(gsm8k_solution("no final line", PromptFormat::R1).unwrap_err().contains("####"));
        // Other formats get their own layout, not r1's tags under a prompt that never asked for them.
        assert_eq!(
            gsm8k_solution(answer, PromptFormat::Boxed).unwrap(),
            PromptFormat::Boxed.lay_out("Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips.", "1072")
        );
    }

    #[test]
    fn rewritten_solution_passes_the_strict_format_and_the_accuracy_reward() {
        use crate::reward::{format::format_score, format::FormatMode, grade, Benchmark, Gold};
        let row = serde_json::json!({"question": "q", "answer": "2 + 3 = <<2+3=5>>5\n#### 5"});
        let conv = row_conversation(&row, DataFormat::Gsm8k, PromptFormat::R1).unwrap();
        let solution = &conv.last().unwrap().content;
        assert_eq!(format_score(solution, FormatMode::Strict), 1.0);
        assert!(grade(Benchmark::Gsm8k, solution, &Gold::gsm8k(row["answer"].as_str().unwrap()).unwrap()).correct);
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(&path, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\n\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n").unwrap();
        let err = read_conversations(&path, DataFormat::Chat, PromptFormat::R1).unwrap_err().to_string();
        assert!(err.contains("d.jsonl:3") && err.contains("assistant"), "{err}");
    }
}
