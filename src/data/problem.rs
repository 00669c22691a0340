//! Problems: a benchmark's data file (its published layout, or any JSONL/Parquet with named
//! fields) → [`Problem`]s with parsed gold answers.

use std::path::Path;

use serde_json::Value;

use super::records::{read_records, OnBadRecord, Skipped};
use super::DataError;
use crate::reward::{Benchmark, Gold};

/// One question with its reference answer.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The row's own id when it has one (`unique_id`, `idx`, `id`), else its line number.
    pub id: String,
    pub question: String,
    /// The answer field exactly as the data holds it (`srlm grade` re-parses it).
    pub answer: Value,
    pub gold: Gold,
    /// Decides how `answer` is parsed and how completions are searched.
    pub benchmark: Benchmark,
    /// 1-based line (JSONL) or row (Parquet) in the source file.
    pub line: usize,
}

/// The longest question any loader accepts, in characters: 8 per token of a 32K-token context,
/// far above any benchmark's questions. Checked before tokenizing, which is what makes a huge
/// question expensive (a 50 MB one took the tokenizer 46 s and 5.6 GB).
pub const MAX_QUESTION_CHARS: usize = 256 * 1024;

/// Refuses a question longer than [`MAX_QUESTION_CHARS`], without tokenizing it.
pub fn check_question_length(question: &str) -> Result<(), String> {
    // Bytes bound characters from above, so short questions are never counted.
    if question.len() <= MAX_QUESTION_CHARS {
        return Ok(());
    }
    match question.chars().count() {
        n if n > MAX_QUESTION_CHARS => {
            Err(format!("question is {n} characters, over the limit of {MAX_QUESTION_CHARS}: no model's context holds it"))
        }
        _ => Ok(()),
    }
}

/// Which fields hold the question, the answer and the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    pub question: String,
    pub answer: String,
    /// None: the line number is the id.
    pub id: Option<String>,
}

impl Fields {
    /// The layout `benchmark` is published with (see shared/data/README.md).
    pub fn published(benchmark: Benchmark) -> Fields {
        let (question, answer, id) = match benchmark {
            Benchmark::Gsm8k => ("question", "answer", None),
            Benchmark::Math500 => ("problem", "answer", Some("unique_id")),
            Benchmark::Minerva => ("problem", "solution", Some("idx")),
            Benchmark::OlympiadBench => ("question", "final_answer", Some("id")),
            Benchmark::Amc23 => ("question", "answer", Some("id")),
        };
        Fields { question: question.into(), answer: answer.into(), id: id.map(Into::into) }
    }
}

/// How to read a problem file.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// None: the benchmark's published layout.
    pub fields: Option<Fields>,
    pub on_bad: OnBadRecord,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { fields: None, on_bad: OnBadRecord::Fail }
    }
}

/// The problems of one file, and the records left out (only with [`OnBadRecord::Skip`]).
#[derive(Debug)]
pub struct Problems {
    pub problems: Vec<Problem>,
    pub skipped: Vec<Skipped>,
}

/// Loads `path` (JSONL or Parquet) as problems of `benchmark`.
pub fn load_problems(benchmark: Benchmark, path: &Path, opts: &LoadOptions) -> Result<Problems, DataError> {
    let fields = opts.fields.clone().unwrap_or_else(|| Fields::published(benchmark));
    let mut records = read_records(path)?;
    let mut problems = Vec::with_capacity(records.rows.len());
    for (line, row) in std::mem::take(&mut records.rows) {
        match problem_from_row(benchmark, &fields, &row) {
            Ok((id, question, answer, gold)) => {
                let id = id.unwrap_or_else(|| line.to_string());
                problems.push(Problem { id, question, answer, gold, benchmark, line });
            }
            Err(reason) => records.reject(line, reason),
        }
    }
    records.settle(opts.on_bad, path)?;
    Ok(Problems { problems, skipped: records.skipped })
}

/// (id, question, answer, gold) of one row, or why it is unusable.
fn problem_from_row(benchmark: Benchmark, fields: &Fields, row: &Value) -> Result<(Option<String>, String, Value, Gold), String> {
    if !row.is_object() {
        return Err("record is not a JSON object".into());
    }
    let question = match row.get(&fields.question) {
        Some(Value::String(q)) if !q.trim().is_empty() => {
            check_question_length(q)?;
            q.clone()
        }
        Some(Value::String(_)) => return Err(format!("'{}' is empty", fields.question)),
        Some(_) => return Err(format!("'{}' is not a string", fields.question)),
        None => return Err(format!("no '{}' field", fields.question)),
    };
    let answer = row.get(&fields.answer).filter(|v| !v.is_null()).ok_or_else(|| format!("no '{}' field", fields.answer))?.clone();
    let gold = gold_from_answer(benchmark, &answer).map_err(|e| format!("'{}': {e}", fields.answer))?;
    let id = fields.id.as_ref().and_then(|f| row.get(f)).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    Ok((id, question, answer, gold))
}

/// Parses an answer given in `benchmark`'s own format: GSM8K's whole answer with its `#### N`,
/// a LaTeX string, an OlympiadBench list, an AMC number, a Minerva solution with `\boxed{}`
/// (or a bare Minerva answer, as `srlm grade` users write them). A JSON number is a number
/// for every benchmark (hub exports often store numeric answers as numbers).
pub fn gold_from_answer(benchmark: Benchmark, answer: &Value) -> Result<Gold, crate::reward::GoldError> {
    if let Some(n) = answer.as_f64() {
        return Gold::number(n);
    }
    let field = match benchmark {
        Benchmark::Minerva => match answer.as_str() {
            Some(s) if !s.contains("\\boxed") => return Gold::latex(s),
            _ => "solution",
        },
        Benchmark::OlympiadBench => "final_answer",
        Benchmark::Gsm8k | Benchmark::Math500 | Benchmark::Amc23 => "answer",
    };
    let mut row = serde_json::Map::new();
    row.insert(field.to_string(), answer.clone());
    benchmark.gold_from_json(&Value::Object(row))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A question over the limit is refused at load with its line (or counted with `Skip`), before
    /// any tokenizer sees it.
    #[test]
    fn an_over_long_question_names_its_line_or_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.jsonl");
        let long = "x".repeat(MAX_QUESTION_CHARS + 1);
        let rows = format!("{{\"question\": \"1+1?\", \"answer\": \"#### 2\"}}\n{{\"question\": \"{long}\", \"answer\": \"#### 2\"}}\n");
        std::fs::write(&path, rows).unwrap();
        let err = load_problems(Benchmark::Gsm8k, &path, &LoadOptions::default()).unwrap_err().to_string();
        assert!(
            err.ends_with("test.jsonl:2: question is 262145 characters, over the limit of 262144: no model's context holds it"),
            "{err}"
        );
        let skip = LoadOptions { fields: None, on_bad: OnBadRecord::Skip };
        let loaded = load_problems(Benchmark::Gsm8k, &path, &skip).unwrap();
        assert_eq!((loaded.problems.len(), loaded.skipped.len(), loaded.skipped[0].line), (1, 1, 2));
    }

    #[test]
    fn the_limit_counts_characters_not_bytes() {
        check_question_length(&"é".repeat(MAX_QUESTION_CHARS)).unwrap();
        assert!(check_question_length(&"é".repeat(MAX_QUESTION_CHARS + 1)).is_err());
    }
}
