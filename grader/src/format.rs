//! Format rewards: does the completion keep the `<think>…</think><answer>…</answer>` layout?
//!
//! The four tags are `<think>`, `</think>`, `<answer>`, `</answer>` (exact, case-sensitive).
//! - [`FormatMode::Lenient`] (`format`), 1.0 or 0.0: after trimming whitespace at both ends the
//!   completion is `<think>` T `</think>` ws `<answer>` A `</answer>`, where ws is any
//!   whitespace, each tag occurs exactly once (so T and A hold no tags), and A is not blank.
//! - [`FormatMode::Strict`] (`format_strict`), 1.0 or 0.0: the completion is exactly
//!   `<think>\n` T `\n</think>\n<answer>\n` A `\n</answer>`, optionally followed by one `\n`,
//!   with each tag exactly once and A not blank. No other leading or trailing whitespace.
//! - [`FormatMode::Soft`] (`format_soft`), in {0, 0.25, 0.5, 0.75, 1}: 0.25 for each tag, in
//!   the order above, that occurs exactly once and starts after the end of the last tag that
//!   earned credit. Text around and between tags is ignored.

use crate::gold::Gold;
use crate::Reward;

const TAGS: [&str; 4] = ["<think>", "</think>", "<answer>", "</answer>"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatMode {
    Lenient,
    Strict,
    Soft,
}

#[derive(Debug, Clone)]
pub struct FormatReward {
    mode: FormatMode,
}

impl FormatReward {
    pub fn new(mode: FormatMode) -> Self {
        FormatReward { mode }
    }
}

impl Reward for FormatReward {
    fn name(&self) -> &str {
        match self.mode {
            FormatMode::Lenient => "format",
            FormatMode::Strict => "format_strict",
            FormatMode::Soft => "format_soft",
        }
    }

    fn score(&self, completion: &str, _gold: &Gold) -> f32 {
        format_score(completion, self.mode)
    }
}

pub fn format_score(completion: &str, mode: FormatMode) -> f32 {
    match mode {
        FormatMode::Lenient => as_score(lenient(completion)),
        FormatMode::Strict => as_score(strict(completion)),
        FormatMode::Soft => soft(completion),
    }
}

/// A pass/fail check as a reward: 1.0 or 0.0.
pub(crate) fn as_score(ok: bool) -> f32 {
    if ok {
        1.0
    } else {
        0.0
    }
}

fn each_tag_once(s: &str) -> bool {
    TAGS.iter().all(|t| s.matches(t).take(2).count() == 1)
}

fn lenient(completion: &str) -> bool {
    let s = completion.trim();
    if !each_tag_once(s) {
        return false;
    }
    let Some(rest) = s.strip_prefix("<think>") else {
        return false;
    };
    let Some((_think, rest)) = rest.split_once("</think>") else {
        return false;
    };
    let Some(rest) = rest.trim_start().strip_prefix("<answer>") else {
        return false;
    };
    let Some(answer) = rest.strip_suffix("</answer>") else {
        return false;
    };
    !answer.trim().is_empty()
}

fn strict(completion: &str) -> bool {
    if !each_tag_once(completion) {
        return false;
    }
    let s = completion.strip_suffix('\n').unwrap_or(completion);
    let Some(rest) = s.strip_prefix("<think>\n") else {
        return false;
    };
    let Some((_think, rest)) = rest.split_once("\n</think>\n<answer>\n") else {
        return false;
    };
    let Some(answer) = rest.strip_suffix("\n</answer>") else {
        return false;
    };
    !answer.trim().is_empty()
}

fn soft(completion: &str) -> f32 {
    let mut score = 0.0;
    let mut after = 0;
    for tag in TAGS {
        let mut found = completion.match_indices(tag);
        let (Some((at, _)), None) = (found.next(), found.next()) else {
            continue;
        };
        if at >= after {
            score += 0.25;
            after = at + tag.len();
        }
    }
    score
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD_STRICT: &str = "<think>\nwork\n</think>\n<answer>\n42\n</answer>\n";

    #[test]
    fn lenient_rule() {
        assert!(lenient("<think>x</think><answer>4</answer>"));
        assert!(lenient("  <think>x</think>\n\n <answer>4</answer>\n"));
        assert!(lenient("<think></think><answer>4</answer>"));
        assert!(!lenient("<think>x</think>y<answer>4</answer>"));
        assert!(!lenient("<think>x</think><answer>4</answer>tail"));
        assert!(!lenient("<think>x</think><answer> </answer>"));
        assert!(!lenient("<think>x<think></think><answer>4</answer>"));
        assert!(!lenient("<answer>4</answer><think>x</think>"));
        assert!(!lenient("<think>x</think><answer>4</answer><answer>5</answer>"));
    }

    #[test]
    fn strict_rule() {
        assert!(strict(GOOD_STRICT));
        assert!(strict(GOOD_STRICT.trim_end()));
        assert!(!strict("<think>work</think><answer>42</answer>"));
        assert!(!strict(&format!(" {GOOD_STRICT}")));
        assert!(!strict(&format!("{GOOD_STRICT}\n")));
        assert!(!strict("<think>\nwork\n</think>\n\n<answer>\n42\n</answer>"));
    }

    #[test]
    fn soft_rule() {
        assert_eq!(soft("<think>a</think><answer>b</answer>"), 1.0);
        assert_eq!(soft("<think>a</think> no answer"), 0.5);
        assert_eq!(soft("</think><think>"), 0.25);
        assert_eq!(soft("<think><think></think>"), 0.25);
        assert_eq!(soft("plain text"), 0.0);
        assert_eq!(soft("pre <think>a</think>b<answer>c</answer> post"), 1.0);
    }
}
