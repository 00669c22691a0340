//! Raw records: a JSONL or Parquet file → JSON objects tagged with their line (or row) number.
//!
//! A record that does not parse either fails the load (the earliest bad line is the error) or,
//! with [`OnBadRecord::Skip`], is listed in `skipped` with its reason: nothing disappears unreported.

use std::fs::File;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;

use super::DataError;

/// What to do with a record that does not parse or lacks a required field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnBadRecord {
    #[default]
    Fail,
    Skip,
}

/// A record left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub reason: String,
}

/// The records of one file. `line` is 1-based: the JSONL line or the Parquet row.
#[derive(Debug, Default)]
pub struct Records {
    pub rows: Vec<(usize, Value)>,
    pub skipped: Vec<Skipped>,
}

impl Records {
    /// Notes a record that failed; [`Records::settle`] decides whether that fails the load.
    pub(crate) fn reject(&mut self, line: usize, reason: impl Into<String>) {
        self.skipped.push(Skipped { line, reason: reason.into() });
    }

    /// With [`OnBadRecord::Fail`], the earliest rejected line becomes the error.
    pub(crate) fn settle(&mut self, on_bad: OnBadRecord, path: &Path) -> Result<(), DataError> {
        self.skipped.sort_by_key(|s| s.line);
        match (on_bad, self.skipped.first()) {
            (OnBadRecord::Fail, Some(first)) => Err(DataError::line(path, first.line, first.reason.clone())),
            _ => Ok(()),
        }
    }
}

/// Reads `path` as JSONL (`.jsonl`, `.json`) or Parquet (`.parquet`), by its extension.
/// Lines that are not JSON are in `skipped`: callers [`Records::settle`] after their own checks.
pub fn read_records(path: &Path) -> Result<Records, DataError> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("jsonl" | "json" | "ndjson") => read_jsonl(path),
        Some("parquet") => read_parquet(path),
        _ => Err(DataError::UnknownFormat { path: path.to_path_buf() }),
    }
}

/// One JSON value per non-blank line; blank lines are not records, bad lines are in `skipped`.
pub fn read_jsonl(path: &Path) -> Result<Records, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let mut records = Records::default();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let parsed = std::str::from_utf8(raw).map_err(|e| format!("not UTF-8 ({e})")).and_then(|text| {
            if text.trim().is_empty() {
                return Ok(None);
            }
            serde_json::from_str::<Value>(text).map(Some).map_err(|e| format!("invalid JSON ({e})"))
        });
        match parsed {
            Ok(Some(value)) => records.rows.push((line, value)),
            Ok(None) => {}
            Err(msg) => records.reject(line, msg),
        }
    }
    Ok(records)
}

/// Every row of a Parquet file as a JSON object (record API: no arrow needed).
pub fn read_parquet(path: &Path) -> Result<Records, DataError> {
    let err = |e: parquet::errors::ParquetError| DataError::Parquet { path: path.to_path_buf(), msg: e.to_string() };
    let file = File::open(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let reader = SerializedFileReader::new(file).map_err(err)?;
    let mut records = Records::default();
    for (i, row) in reader.get_row_iter(None).map_err(err)?.enumerate() {
        records.rows.push((i + 1, row.map_err(err)?.to_json_value()));
    }
    Ok(records)
}
