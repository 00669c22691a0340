//! After a learner failure that left a checkpoint: the command line that continues from it.

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
