//! The completion log: one JSONL line per completion, appended as problems finish, so an
//! interrupted run resumes without regenerating them.
//!
//! On reopening, a truncated last line (the write the interruption cut) and the lines of any
//! problem with fewer than k samples are dropped, atomically; a bad line elsewhere is an error.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EvalError;
use crate::generate::FinishReason;
use crate::reward::Benchmark;

/// One completion with its grading: the lines `srlm grade` also accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRecord {
    pub benchmark: Benchmark,
    /// Position of the problem in its data file's problem list (0-based).
    pub index: usize,
    pub problem_id: String,
    /// Which of the k samples of the problem.
    pub sample: usize,
    /// The answer field as the data holds it.
    pub gold: Value,
    /// The prompt as rendered for the model (chat template applied), as `srlm train` logs it.
    #[serde(default)]
    pub prompt: String,
    pub completion: String,
    pub extracted: Option<String>,
    pub correct: bool,
    pub tokens: usize,
    pub finish_reason: FinishReason,
    /// This completion's share of its batch's generation time.
    pub seconds: f64,
}

pub struct CompletionLog {
    path: PathBuf,
    file: File,
    /// Records of finished problems by (benchmark, index).
    finished: HashMap<(Benchmark, usize), Vec<CompletionRecord>>,
}

impl CompletionLog {
    /// Opens (or creates) the log; problems with all `k` samples logged count as finished.
    pub fn open(path: &Path, k: usize) -> Result<Self, EvalError> {
        let io = |source| EvalError::Io { path: path.to_path_buf(), source };
        let mut finished: HashMap<(Benchmark, usize), Vec<CompletionRecord>> = HashMap::new();
        let mut dropped = false;
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(io)?;
            let lines: Vec<&str> = text.split('\n').collect();
            for (i, line) in lines.iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<CompletionRecord>(line) {
                    Ok(r) => finished.entry((r.benchmark, r.index)).or_default().push(r),
                    // Only the last line can be a cut write; it ends the file without a newline.
                    Err(_) if i + 1 == lines.len() => dropped = true,
                    Err(e) => return Err(EvalError::Log { path: path.to_path_buf(), line: i + 1, msg: e.to_string() }),
                }
            }
            let before = finished.len();
            finished.retain(|_, rs| {
                rs.sort_by_key(|r| r.sample);
                rs.iter().map(|r| r.sample).eq(0..k)
            });
            dropped |= finished.len() < before;
            if dropped {
                rewrite(path, &finished)?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        Ok(CompletionLog { path: path.to_path_buf(), file, finished })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The logged samples of a finished problem.
    pub fn finished(&self, benchmark: Benchmark, index: usize) -> Option<&[CompletionRecord]> {
        self.finished.get(&(benchmark, index)).map(Vec::as_slice)
    }

    /// Appends all samples of one problem in one write, then flushes.
    pub fn append(&mut self, records: Vec<CompletionRecord>) -> Result<(), EvalError> {
        let mut buf = String::new();
        for r in &records {
            buf.push_str(&serde_json::to_string(r).map_err(|e| EvalError::Log { path: self.path.clone(), line: 0, msg: e.to_string() })?);
            buf.push('\n');
        }
        let io = |source| EvalError::Io { path: self.path.clone(), source };
        self.file.write_all(buf.as_bytes()).map_err(io)?;
        self.file.flush().map_err(io)?;
        if let Some(first) = records.first() {
            self.finished.insert((first.benchmark, first.index), records);
        }
        Ok(())
    }
}

/// Writes only the finished problems' records, in benchmark then problem order (temp + rename).
fn rewrite(path: &Path, finished: &HashMap<(Benchmark, usize), Vec<CompletionRecord>>) -> Result<(), EvalError> {
    let mut keys: Vec<&(Benchmark, usize)> = finished.keys().collect();
    keys.sort_by_key(|(b, i)| (b.name(), *i));
    let mut text = String::new();
    for key in keys {
        for r in &finished[key] {
            text.push_str(&serde_json::to_string(r).map_err(|e| EvalError::Log {
                path: path.to_path_buf(),
                line: 0,
                msg: e.to_string(),
            })?);
            text.push('\n');
        }
    }
    super::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    /// Kept lines are parsed and written again on resume; their floats must come back as written.
    #[test]
    fn floats_survive_a_parse_and_reserialise() {
        for text in ["0.9491207645", "0.1", "123.456789012345", "1e-7"] {
            let v: f64 = serde_json::from_str(text).unwrap();
            let back: f64 = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{text}");
            assert_eq!(v.to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text} parsed off by an ulp");
        }
    }
}
