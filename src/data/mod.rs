//! Datasets: data files → [`Problem`]s (questions with parsed gold answers) or chat
//! [`ChatRecord`]s, then preprocessing ([`prep`]) and prompt rendering ([`PromptFormat`]).
//!
//! The five benchmarks are read in their published layouts ([`Fields::published`]); any other
//! JSONL or Parquet file names its fields with [`LoadOptions::fields`]. Where each benchmark
//! lives under a data directory is [`benchmark_file`].

mod chat_records;
mod error;
pub mod prep;
mod problem;
pub mod prompt;
mod records;

use std::path::{Path, PathBuf};

pub use chat_records::{load_chat_jsonl, read_chat_jsonl, ChatRecord, ChatRecords};
pub use error::DataError;
pub use problem::{check_question_length, gold_from_answer, load_problems, Fields, LoadOptions, Problem, Problems, MAX_QUESTION_CHARS};
pub use prompt::{question_messages, PromptFormat, UnknownPromptFormat, BOXED_INSTRUCTION, R1_SYSTEM_PROMPT};
pub use records::{read_jsonl, read_parquet, read_records, OnBadRecord, Records, Skipped};

use crate::reward::Benchmark;

/// Where `benchmark`'s evaluation file sits under a data directory laid out like shared/data.
pub fn benchmark_file(data_dir: &Path, benchmark: Benchmark) -> PathBuf {
    data_dir.join(match benchmark {
        Benchmark::Gsm8k => "gsm8k/test.jsonl",
        Benchmark::Math500 => "eval/math500.jsonl",
        Benchmark::Minerva => "eval/minerva_math.jsonl",
        Benchmark::OlympiadBench => "eval/olympiadbench.jsonl",
        Benchmark::Amc23 => "eval/amc23.jsonl",
    })
}

#[cfg(test)]
mod data_file_tests;
/// The answer checker (crate `srlm-grader`) on every row of the shared data sets.
#[cfg(test)]
mod grader_data_tests;

/// The shared data files, their benchmark and row count (shared/data/README.md).
#[cfg(test)]
pub(crate) const SHARED_FILES: [(Benchmark, &str, usize); 6] = [
    (Benchmark::Gsm8k, "gsm8k/train.jsonl", 7473),
    (Benchmark::Gsm8k, "gsm8k/test.jsonl", 1319),
    (Benchmark::Math500, "eval/math500.jsonl", 500),
    (Benchmark::Minerva, "eval/minerva_math.jsonl", 272),
    (Benchmark::OlympiadBench, "eval/olympiadbench.jsonl", 675),
    (Benchmark::Amc23, "eval/amc23.jsonl", 40),
];

/// `$SRLM_SHARED/data`, else `<crate root>/../shared/data`: the shared data sets tests read.
#[cfg(test)]
pub(crate) fn shared_data_dir() -> PathBuf {
    let shared =
        std::env::var_os("SRLM_SHARED").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    shared.join("data")
}
