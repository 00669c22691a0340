//! Trace distillation: teacher samples → accuracy reward keeps the correct ones → chat JSONL for SFT.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::chat::{ChatTemplate, Message};
use crate::data::{question_messages, PromptFormat};
use crate::generate::continuous::groups_in_batches;
use crate::generate::{Completion, GenerationConfig};
use crate::learner::sft_data::{read_jsonl, DataError};
use crate::model::CausalLm;
use crate::reward::{grade, Benchmark, Gold};
use crate::tokenizer::Tokenizer;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("problem {index}: {reason}")]
    Prompt { index: usize, reason: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// `go_on` said stop between problems; nothing was written.
    #[error("stopped after {done} of {total} problems; no traces written")]
    Stopped { done: usize, total: usize },
}

/// The problems of a JSONL file with a `question` (or `problem`) field and `benchmark`'s gold
/// field, each asked with `system` before it (`data::prompt`, as every command asks).
pub fn read_problems(path: &Path, benchmark: Benchmark, system: Option<&str>) -> Result<Vec<Problem>, DataError> {
    read_jsonl(path, |row| {
        let question = ["question", "problem"]
            .iter()
            .find_map(|k| row.get(*k).and_then(serde_json::Value::as_str))
            .ok_or("missing string field 'question' (or 'problem')")?;
        crate::data::check_question_length(question)?;
        let gold = benchmark.gold_from_json(row).map_err(|e| e.to_string())?;
        Ok(Problem { messages: question_messages(question, system), gold })
    })
}

/// A training prompt (system and user turns) and the answer a trace must reach.
#[derive(Debug, Clone)]
pub struct Problem {
    pub messages: Vec<Message>,
    pub gold: Gold,
}

/// What becomes of a correct trace that does not keep the prompt format's layout (a student
/// learns the shape of what it is shown, so a teacher that breaks the layout teaches it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceLayout {
    /// Kept as sampled.
    #[default]
    Any,
    /// Left out.
    Require,
    /// Laid out again: the teacher's text without the layout's marks as the reasoning, the
    /// answer the grader read from it as the answer (`PromptFormat::lay_out`).
    Rewrite,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown trace layout '{0}' (known: any, require, rewrite)")]
pub struct UnknownTraceLayout(pub String);

impl std::str::FromStr for TraceLayout {
    type Err = UnknownTraceLayout;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(TraceLayout::Any),
            "require" => Ok(TraceLayout::Require),
            "rewrite" => Ok(TraceLayout::Rewrite),
            _ => Err(UnknownTraceLayout(s.to_string())),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceStats {
    pub problems: usize,
    pub samples: usize,
    /// Correct traces written.
    pub kept: usize,
    /// Correct traces out of the layout: left out (`Require`) or laid out again (`Rewrite`).
    pub unformatted: usize,
    /// Problems with at least one correct trace.
    pub solved: usize,
}

impl TraceStats {
    /// What happened to the correct traces out of the layout, for the progress line.
    pub fn layout_note(&self, layout: TraceLayout) -> String {
        let n = self.unformatted;
        match layout {
            TraceLayout::Any => format!("{n} of them out of the layout, kept as sampled"),
            TraceLayout::Require => format!("{n} correct but out of the layout left out"),
            TraceLayout::Rewrite => format!("{n} of them laid out again"),
        }
    }
}

/// Samples `n` teacher completions per problem through the shared sampler, keeps those the
/// accuracy reward of `benchmark` marks correct (those out of `format`'s layout as `layout`
/// says), and writes them to `out` as chat JSONL
/// (`{"messages": [..prompt, {"role": "assistant", …}]}`), atomically. Problems are sampled
/// [`problems_per_batch`] at a time in one decode batch; `go_on(done, total)` is told of every
/// finished problem and may stop the run before the next batch (a signal's graceful stop).
#[allow(clippy::too_many_arguments)]
pub fn distill_traces(
    teacher: &dyn CausalLm,
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    problems: &[Problem],
    n: usize,
    gen: &GenerationConfig,
    benchmark: Benchmark,
    format: PromptFormat,
    layout: TraceLayout,
    out: &Path,
    go_on: &dyn Fn(usize, usize) -> bool,
) -> Result<TraceStats, TraceError> {
    let mut lines = String::new();
    let mut stats = TraceStats { problems: problems.len(), ..TraceStats::default() };
    let prompts = problems
        .iter()
        .enumerate()
        .map(|(index, problem)| {
            let prompt_error = |reason: String| TraceError::Prompt { index, reason };
            let text = template.render(&problem.messages, true).map_err(|e| prompt_error(e.to_string()))?;
            tokenizer.encode(&text, false).map_err(|e| prompt_error(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let total = problems.len();
    let keep = |index: usize, completions: Vec<Completion>| {
        let problem = &problems[index];
        stats.samples += completions.len();
        let mut solved = false;
        for c in &completions {
            let verdict = grade(benchmark, &c.text, &problem.gold);
            let Some(answer) = verdict.extracted.filter(|_| verdict.correct) else { continue };
            let mut reply = c.text.trim().to_string();
            if format.followed_by(&reply) == Some(false) {
                stats.unformatted += 1;
                match layout {
                    TraceLayout::Any => {}
                    TraceLayout::Require => continue,
                    TraceLayout::Rewrite => reply = format.lay_out(&format.reasoning_of(&reply), &answer),
                }
            }
            let mut messages = problem.messages.clone();
            messages.push(Message::new("assistant", reply));
            lines.push_str(&serde_json::json!({ "messages": messages }).to_string());
            lines.push('\n');
            stats.kept += 1;
            solved = true;
        }
        stats.solved += usize::from(solved);
    };
    // Streams are disjoint across problems, so every sample has its own randomness.
    let stream = |index: usize| (index * n) as u64;
    if let Some(done) = groups_in_batches(teacher, tokenizer, &prompts, stream, n, TEACHER_ROWS, gen, keep, go_on)? {
        return Err(TraceError::Stopped { done, total });
    }
    write_atomically(out, lines.as_bytes())?;
    Ok(stats)
}

/// Rows decoding together while the teacher samples: on the CPU a batch this wide costs little
/// more per step than one row.
pub const TEACHER_ROWS: usize = 32;

/// Problems sampled together: their groups fill `TEACHER_ROWS` rows (one problem at least),
/// as `groups_in_batches` batches them.
pub fn problems_per_batch(n: usize) -> usize {
    (TEACHER_ROWS / n.max(1)).max(1)
}

/// [`crate::atomic_file::write_atomic`], its failure naming `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TraceError> {
    crate::atomic_file::write_atomic(path, bytes).map_err(|source| TraceError::Io { path: path.to_path_buf(), source })
}
