//! After a stop or a learner failure that left a checkpoint: the command line that continues
//! from it.

use std::path::PathBuf;

use srlm_actors::RuntimeError;

/// The exit status of a run stopped by SIGINT or SIGTERM after saving where it stood
/// (EX_TEMPFAIL: try again, with `--resume`). A second signal exits at once with 130.
pub const INTERRUPTED_EXIT_STATUS: u8 = 75;

/// A run stopped by a signal at a step boundary, before finishing.
#[derive(Debug)]
pub struct Interrupted {
    /// What was running: a stage's name, or the held-out evaluation.
    pub during: String,
    /// A checkpoint or finished stage to continue from; None when nothing was trained yet.
    pub resume_from: Option<PathBuf>,
    /// The command that continues, once the invocation is known.
    pub command: Option<String>,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by a signal during {}", self.during)?;
        match (&self.resume_from, &self.command) {
            (Some(_), Some(command)) => write!(f, "; continue with:\n  {command}"),
            (Some(dir), None) => write!(f, "; continue with --resume {}", dir.display()),
            (None, _) => write!(f, "; nothing was saved yet: run the same command again"),
        }
    }
}

impl std::error::Error for Interrupted {}

/// `e` with the command that continues from the checkpoint it names, when it is a learner
/// failure that left one; `args` is the failed invocation (program name first).
pub fn with_resume_command(e: anyhow::Error, args: &[String]) -> anyhow::Error {
    if let Some(stop) = e.downcast_ref::<Interrupted>() {
        let command = stop.resume_from.as_ref().map(|dir| resume_command(args, &dir.display().to_string()));
        return Interrupted { during: stop.during.clone(), resume_from: stop.resume_from.clone(), command }.into();
    }
    let checkpoint = match e.downcast_ref::<RuntimeError>() {
        Some(RuntimeError::Learner { checkpoint, .. }) => checkpoint.location().map(str::to_string),
        _ => None,
    };
    match checkpoint {
        Some(dir) => anyhow::anyhow!("{e}\ncontinue from that checkpoint with:\n  {}", resume_command(args, &dir)),
        None => e,
    }
}

/// `args` (the failed invocation, program name first) with any `--resume` replaced by
/// `--resume <checkpoint>`, quoted for a POSIX shell.
pub fn resume_command(args: &[String], checkpoint: &str) -> String {
    let mut out: Vec<&str> = Vec::with_capacity(args.len() + 2);
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        if a == "--resume" {
            rest.next();
        } else if !a.starts_with("--resume=") {
            out.push(a);
        }
    }
    out.extend(["--resume", checkpoint]);
    out.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use srlm_actors::FailureCheckpoint;

    #[test]
    fn a_learner_failure_ends_with_the_resume_command() {
        let args = ["srlm", "train", "--deterministic"].map(String::from).to_vec();
        let written = FailureCheckpoint::Written { step: 4, location: "out/checkpoints-stage-1/checkpoint-00000004".into() };
        let failed = RuntimeError::Learner { step: 4, reason: "GRPO step 4: out of memory".into(), checkpoint: written };
        let text = with_resume_command(failed.into(), &args).to_string();
        assert!(text.starts_with("learner failed at step 4: GRPO step 4: out of memory; checkpoint of step 4"), "{text}");
        assert!(text.ends_with("srlm train --deterministic --resume out/checkpoints-stage-1/checkpoint-00000004"), "{text}");
        let missing = FailureCheckpoint::Missing { why: "none".into() };
        let failed = RuntimeError::Learner { step: 0, reason: "bad".into(), checkpoint: missing };
        assert!(!with_resume_command(failed.into(), &args).to_string().contains("--resume"));
    }

    #[test]
    fn a_stop_names_the_resume_command_or_says_nothing_was_saved() {
        let args = ["srlm", "train", "--out", "r"].map(String::from).to_vec();
        let stop =
            Interrupted { during: "sft".into(), resume_from: Some("r/checkpoints-stage-0/checkpoint-00000007".into()), command: None };
        let e = with_resume_command(stop.into(), &args);
        assert!(e.downcast_ref::<Interrupted>().is_some(), "stays an Interrupted (the exit status depends on it)");
        assert_eq!(
            e.to_string(),
            "stopped by a signal during sft; continue with:\n  srlm train --out r --resume r/checkpoints-stage-0/checkpoint-00000007"
        );
        let early = Interrupted { during: "the held-out evaluation".into(), resume_from: None, command: None };
        assert!(with_resume_command(early.into(), &args).to_string().ends_with("nothing was saved yet: run the same command again"));
    }

    #[test]
    fn replaces_an_earlier_resume_and_quotes_what_needs_it() {
        let args: Vec<String> =
            ["srlm", "train", "--resume", "old", "--out", "my runs", "--resume=older", "--deterministic"].map(String::from).to_vec();
        assert_eq!(
            resume_command(&args, "my runs/checkpoints-stage-1/checkpoint-00000004"),
            "srlm train --out 'my runs' --deterministic --resume 'my runs/checkpoints-stage-1/checkpoint-00000004'"
        );
    }
}
