//! Commitments: a completion that states two different final answers has committed to neither.
//!
//! The stated answers are every `\boxed{}`/`\fbox{}` content and every `<answer>…</answer>`
//! content (a tag holding a box states what its box does), read after the last `</think>`, so
//! drafts while thinking do not count. Each must match the gold: `\boxed{3} … \boxed{5}` is
//! wrong whichever of the two the gold is, while one value stated twice (`\boxed{\frac12}`, then
//! `<answer>0.5</answer>`) is one answer. Only the strategies in the extraction order count, in
//! the same search window, and only the last [`MAX_STATED_ANSWERS`] boxes and tags are read.

use crate::accuracy::answers_match;
use crate::extract::{answer_tags_from_end, boxes_from_end, clean, has_box, tag_answer, tail, ExtractConfig, Strategy};
use crate::gold::Gold;
use crate::limits::{MAX_SEARCH_BYTES, MAX_STATED_ANSWERS};

/// Whether `completion` states a final answer that does not match `gold`.
pub fn states_another_answer(completion: &str, cfg: &ExtractConfig, gold: &Gold) -> bool {
    stated_answers(completion, cfg).iter().any(|a| !answers_match(a, gold))
}

/// The final answers `completion` states, the last first, cleaned as extraction cleans them.
pub fn stated_answers(completion: &str, cfg: &ExtractConfig) -> Vec<String> {
    let text = tail(completion, cfg.max_search_bytes.min(MAX_SEARCH_BYTES));
    let text = text.rfind("</think>").and_then(|i| text.get(i + "</think>".len()..)).unwrap_or(text);
    let boxes = cfg.order.contains(&Strategy::Boxed);
    let mut stated: Vec<String> = Vec::new();
    if boxes {
        let found = boxes_from_end(text, 2 * MAX_STATED_ANSWERS).flatten();
        stated.extend(found.take(MAX_STATED_ANSWERS));
    }
    if cfg.order.contains(&Strategy::AnswerTag) {
        let tags = answer_tags_from_end(text).take(MAX_STATED_ANSWERS);
        // With the box strategy on, a tag's boxes are already counted.
        stated.extend(tags.filter(|t| !(boxes && has_box(t))).map(tag_answer));
    }
    stated.iter().map(|a| clean(a)).filter(|a| !a.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stated(s: &str) -> Vec<String> {
        stated_answers(s, &ExtractConfig::default())
    }

    #[test]
    fn boxes_and_tags_after_thinking() {
        assert_eq!(stated("\\boxed{3} so \\boxed{5}"), ["5", "3"]);
        assert_eq!(stated("<think>\\boxed{3}</think><answer>5</answer>"), ["5"]);
        assert_eq!(stated("<answer>\\boxed{5}</answer> \\boxed{4}"), ["4", "5"], "a tag's box is counted once");
        assert_eq!(stated("<answer>The answer is 7.</answer><answer>8</answer>"), ["8", "7"]);
        assert_eq!(stated("\\boxed{} then \\boxed{2"), Vec::<String>::new());
        let only_tags = ExtractConfig::new(vec![Strategy::AnswerTag]);
        assert_eq!(stated_answers("\\boxed{3} <answer>\\boxed{5}</answer>", &only_tags), ["5"]);
    }

    #[test]
    fn at_most_the_last_few() {
        let many = "\\boxed{1} ".repeat(1000);
        assert_eq!(stated(&many).len(), MAX_STATED_ANSWERS);
    }

    #[test]
    fn one_value_stated_twice_is_one_answer() {
        let gold = Gold::latex("\\frac{1}{2}").unwrap();
        let cfg = ExtractConfig::default();
        assert!(!states_another_answer("\\boxed{\\frac12} <answer>0.5</answer>", &cfg, &gold));
        assert!(states_another_answer("\\boxed{\\frac12} <answer>2</answer>", &cfg, &gold));
    }
}
