//! Chat-format JSONL for SFT: `{"messages": [{"role", "content"}, …]}` per line → [`ChatRecord`].

use std::path::Path;

use serde_json::Value;

use super::records::{read_jsonl, OnBadRecord, Skipped};
use super::DataError;
use crate::chat::Message;

/// One conversation and the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRecord {
    pub line: usize,
    pub messages: Vec<Message>,
}

/// Conversations, and the lines left out (only with [`OnBadRecord::Skip`]).
#[derive(Debug)]
pub struct ChatRecords {
    pub records: Vec<ChatRecord>,
    pub skipped: Vec<Skipped>,
}

/// Every conversation of `path`; the first malformed line is an error naming file and line.
pub fn read_chat_jsonl(path: &Path) -> Result<Vec<ChatRecord>, DataError> {
    Ok(load_chat_jsonl(path, OnBadRecord::Fail)?.records)
}

/// Like [`read_chat_jsonl`], with a choice of failing or skipping malformed lines.
pub fn load_chat_jsonl(path: &Path, on_bad: OnBadRecord) -> Result<ChatRecords, DataError> {
    let mut raw = read_jsonl(path)?;
    let mut records = Vec::with_capacity(raw.rows.len());
    for (line, row) in std::mem::take(&mut raw.rows) {
        match messages(&row) {
            Ok(messages) => records.push(ChatRecord { line, messages }),
            Err(msg) => raw.reject(line, msg),
        }
    }
    raw.settle(on_bad, path)?;
    Ok(ChatRecords { records, skipped: raw.skipped })
}

fn messages(row: &Value) -> Result<Vec<Message>, String> {
    let list = match row.get("messages") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) => return Err("'messages' is empty".into()),
        Some(_) => return Err("'messages' is not a list".into()),
        None => return Err("no 'messages' field".into()),
    };
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let text = |field: &str| {
                m.get(field).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("messages[{i}] has no string '{field}'"))
            };
            Ok(Message { role: text("role")?, content: text("content")? })
        })
        .collect()
}
