//! Data errors: every one names the file, and the line (JSONL) or row (Parquet) when there is one.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {msg}", path.display())]
    Line { path: PathBuf, line: usize, msg: String },
    #[error("{}: {msg}", path.display())]
    Parquet { path: PathBuf, msg: String },
    #[error("{}: unknown data format (expected .jsonl, .json or .parquet)", path.display())]
    UnknownFormat { path: PathBuf },
}

impl DataError {
    pub(crate) fn line(path: &std::path::Path, line: usize, msg: impl Into<String>) -> Self {
        DataError::Line { path: path.to_path_buf(), line, msg: msg.into() }
    }
}
