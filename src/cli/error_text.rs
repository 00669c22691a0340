//! An error as one line for the terminal: its chain of causes, each said once.

/// The causes joined by ": ", leaving out a cause whose text the message before it already ends
/// with (error types that print their source in their own message).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct ReadFailed {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn a_source_already_in_the_message_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
        let e = anyhow::Error::new(ReadFailed { path: "/nope.toml".into(), source: io }).context("srlm sft");
        assert_eq!(error_text(&e), "srlm sft: /nope.toml: No such file or directory (os error 2)");
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&plain), "outer: inner");
    }
}
