//! `rollouts.jsonl`: every sampled group of a GRPO stage (prompt, completions, rewards,
//! advantages), one JSON line each, appended as the learner sees them. Each line names its
//! stage and prompt id, so a resumed stage can drop the lines its checkpoint does not cover:
//! those groups are sampled again, and the log would otherwise hold them twice.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

use srlm_actors::{RunState, ScoredGroup};

use crate::atomic_file::write_atomic;

pub struct RolloutLog {
    pub path: PathBuf,
    /// Groups of every `every`-th learner step are written.
    pub every: u64,
    pub stage: usize,
}

impl RolloutLog {
    /// Appends `g`, sampled for learner step `step` (0-based); `dropped` says why the learner
    /// did not train it.
    pub fn write(&self, step: u64, g: &ScoredGroup, dropped: Option<&str>) -> std::io::Result<()> {
        if !step.is_multiple_of(self.every) {
            return Ok(());
        }
        let completions: Vec<_> = g
            .group
            .completions
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let rewards: serde_json::Map<_, _> =
                    g.rewards.per_function.iter().map(|(n, v)| (n.clone(), serde_json::json!(v[i]))).collect();
                serde_json::json!({ "completion": c.text, "rewards": rewards, "total": g.rewards.total[i], "advantage": g.advantages[i] })
            })
            .collect();
        let mut line = serde_json::json!({
            "stage": self.stage, "step": step, "prompt_id": g.group.prompt.id, "policy_version": g.group.policy_version,
            "prompt": g.group.prompt.text, "gold": g.group.prompt.reference, "completions": completions,
        });
        if let Some(why) = dropped {
            line["dropped"] = why.into();
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        writeln!(f, "{line}")
    }

    /// Keeps only what `start` (the state the stage starts or resumes from) has used up of this
    /// stage: lines of its prompts that were neither handed out again (`pending`) nor past
    /// `cursor`. Other stages' lines, lines without a stage (older logs) and lines that do not
    /// parse stay as they are. Returns how many lines went; the file is replaced atomically.
    pub fn keep_only_used(&self, start: &RunState) -> std::io::Result<usize> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let pending: HashSet<u64> = start.pending.iter().copied().collect();
        let used = |id: u64| id < start.cursor && !pending.contains(&id);
        let mut kept = String::with_capacity(text.len());
        let mut removed = 0;
        for line in text.lines() {
            let of_this_stage = serde_json::from_str::<serde_json::Value>(line).ok().and_then(|v| {
                let stage = v.get("stage")?.as_u64()?;
                let id = v.get("prompt_id")?.as_u64()?;
                (stage == self.stage as u64).then_some(id)
            });
            match of_this_stage {
                Some(id) if !used(id) => removed += 1,
                _ => {
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
        }
        if removed > 0 {
            write_atomic(&self.path, kept.as_bytes())?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(stage: usize, id: u64) -> String {
        serde_json::json!({ "stage": stage, "step": 0, "prompt_id": id, "completions": [] }).to_string()
    }

    #[test]
    fn a_resumed_stage_forgets_the_groups_it_samples_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollouts.jsonl");
        let mut lines: Vec<String> = (0..4).map(|id| line(0, id)).collect();
        lines.push(r#"{"step": 3, "prompt": "an older log line"}"#.into());
        lines.push("not json".into());
        lines.extend((0..6).map(|id| line(1, id)));
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let log = RolloutLog { path: path.clone(), every: 1, stage: 1 };
        // Stage 1's checkpoint: prompts 0..4 handed out, 2 still pending.
        let start = RunState { cursor: 4, pending: vec![2], ..RunState::default() };
        assert_eq!(log.keep_only_used(&start).unwrap(), 3);
        let expected: Vec<String> = lines.iter().take(6).cloned().chain([0, 1, 3].map(|id| line(1, id))).collect();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected.join("\n") + "\n");
    }

    #[test]
    fn a_fresh_stage_leaves_other_stages_alone_and_a_missing_log_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollouts.jsonl");
        let log = RolloutLog { path: path.clone(), every: 1, stage: 2 };
        assert_eq!(log.keep_only_used(&RunState::default()).unwrap(), 0);
        let text = format!("{}\n{}\n", line(0, 0), line(1, 5));
        std::fs::write(&path, &text).unwrap();
        assert_eq!(log.keep_only_used(&RunState::default()).unwrap(), 0);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
