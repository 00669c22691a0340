//! Evaluation: benchmark problems → completions → graded records in a resumable JSONL log →
//! [`EvalReport`] (pass@1 over k samples, Wilson interval, tokens, time, settings).
//!
//! [`Evaluator`] runs one benchmark; [`CompletionLog`] makes runs resumable; [`regrade_line`]
//! is `srlm grade`; [`pair_up`] and [`summarise_pairs`] are `srlm compare` (McNemar's test).

mod log;
mod paired;
mod regrade;
mod report;
mod run;
mod wilson;

use std::path::{Path, PathBuf};

pub use log::{CompletionLog, CompletionRecord};
pub use paired::{markdown as paired_markdown, mcnemar_exact, pair_up, summarise_pairs, EvalRun, Pair, PairError, PairedSummary};
pub use regrade::regrade_line;
pub use report::{summarise, BenchmarkReport, EvalReport, EvalSettings};
pub use run::{Evaluator, Progress};
pub use wilson::{wilson_interval, Z95};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error("generation failed: {0}")]
    Model(#[from] candle_core::Error),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    #[error("prompt does not render: {0}")]
    Chat(#[from] crate::chat::ChatError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: not a completion record ({msg})", path.display())]
    Log { path: PathBuf, line: usize, msg: String },
    #[error("{benchmark} problem on line {line}: its prompt is {tokens} tokens, and the model's context holds {context}")]
    PromptTooLong { benchmark: &'static str, line: usize, tokens: usize, context: usize },
    #[error("{0}; lower --batch-size, --k or --max-new-tokens")]
    TooLarge(#[from] crate::generate::memory::TooLarge),
    #[error("{}: this output folder holds a run with other settings ({field} differs); use another --out", path.display())]
    SettingsChanged { path: PathBuf, field: String },
}

/// [`crate::atomic_file::write_atomic`], its failure naming `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    crate::atomic_file::write_atomic(path, bytes).map_err(|source| EvalError::Io { path: path.to_path_buf(), source })
}

/// Records `settings` in `path`, or checks that the run already there used the same ones.
pub fn check_settings(path: &Path, settings: &EvalSettings) -> Result<(), EvalError> {
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io { path: path.to_path_buf(), source })?;
        let bad = |line, msg: String| EvalError::Log { path: path.to_path_buf(), line, msg };
        let old: EvalSettings = serde_json::from_str(&text).map_err(|e| bad(e.line(), e.to_string()))?;
        // Compared as values of the same types, so f32 fields round-trip exactly.
        let (old, new) = match (serde_json::to_value(old), serde_json::to_value(settings)) {
            (Ok(old), Ok(new)) => (old, new),
            (Err(e), _) | (_, Err(e)) => return Err(bad(0, e.to_string())),
        };
        if let (Some(old), Some(new)) = (old.as_object(), new.as_object()) {
            if let Some((field, _)) = new.iter().find(|(k, v)| old.get(*k) != Some(*v)) {
                return Err(EvalError::SettingsChanged { path: path.to_path_buf(), field: field.clone() });
            }
        }
        return Ok(());
    }
    let text = serde_json::to_string_pretty(settings).unwrap_or_default();
    write_atomic(path, text.as_bytes())
}
