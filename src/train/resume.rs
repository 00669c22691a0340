//! After a learner failure that left a checkpoint: the command line that continues from it.

use srlm_actors::RuntimeError;

/// `e` with the command that continues from the checkpoint it names, when it is a learner
/// failure that left one; `args` is the failed invocation (program name first).
pub fn with_resume_command(e: anyhow::Error, args: &[String]) -> anyhow::Error {
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
    fn replaces_an_earlier_resume_and_quotes_what_needs_it() {
        let args: Vec<String> = ["srlm", "train", "--resume", "old", "--out", "my runs", "--resume=older", "--deterministic"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            resume_command(&args, "my runs/checkpoints-stage-1/checkpoint-00000004"),
            "srlm train --out 'my runs' --deterministic --resume 'my runs/checkpoints-stage-1/checkpoint-00000004'"
        );
    }
}
