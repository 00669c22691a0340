//! Data tests: every row of every shared data set has a parseable gold that matches itself,
//! rewritten, and inside a whole completion.
//!
//! Data lives in `$SRLM_SHARED/data` (default `<crate root>/../shared/data`).

use serde_json::Value;

use crate::reward::answer::Answer;
use crate::reward::{answers_match, grade, Benchmark, Gold};

fn rows(rel: &str) -> Vec<Value> {
    let path = crate::data::shared_data_dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (set SRLM_SHARED to the shared/ folder)", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{rel} line {}: {e}", i + 1)))
        .collect()
}

fn golds(bench: Benchmark, rel: &str) -> Vec<Gold> {
    rows(rel).iter().enumerate().map(|(i, row)| bench.gold_from_json(row).unwrap_or_else(|e| panic!("{rel} row {i}: {e}"))).collect()
}

#[test]
fn every_gold_parses_and_matches_itself() {
    let mut failures = Vec::new();
    for (bench, rel, count) in crate::data::SHARED_FILES {
        let golds = golds(bench, rel);
        assert_eq!(golds.len(), count, "{rel} row count");
        let mut text = 0;
        for (i, gold) in golds.iter().enumerate() {
            text += usize::from(matches!(gold.answer, Answer::Text(_)));
            if !answers_match(&gold.raw, gold) {
                failures.push(format!("{rel} row {i}: {:?} does not match itself", gold.raw));
            }
            let completion = format!("<think>\nok\n</think>\n<answer>\n\\boxed{{{}}}\n</answer>", gold.raw);
            let v = grade(bench, &completion, gold);
            if !v.correct {
                failures.push(format!("{rel} row {i}: completion with {:?} graded wrong ({:?})", gold.raw, v.extracted));
            }
        }
        eprintln!("{rel}: {count} golds, {text} textual (no math structure)");
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// `\dfrac` → `\frac`, `\left(` → `(`, spaces around `+ = }` and before commands.
fn rewrite(s: &str) -> String {
    let s =
        s.replace("\\dfrac", "\\frac").replace("\\left(", "(").replace("\\right)", ")").replace("\\left[", "[").replace("\\right]", "]");
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        let next = chars.get(i + 1).copied();
        let starts_command = c == '\\' && next.is_some_and(|n| n.is_ascii_alphabetic()) && prev != Some('\\');
        if matches!(c, '+' | '=') || starts_command {
            out.push(' ');
        }
        out.push(c);
        if matches!(c, '+' | '=' | '}') {
            out.push(' ');
        }
    }
    out
}

#[test]
fn math500_golds_equal_their_rewrites() {
    let mut failures = Vec::new();
    let golds = golds(Benchmark::Math500, "eval/math500.jsonl");
    for (i, gold) in golds.iter().enumerate() {
        let variant = rewrite(&gold.raw);
        if !answers_match(&variant, gold) {
            failures.push(format!("row {i}: {:?} vs rewrite {variant:?}", gold.raw));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn rewrite_changes_layout_only() {
    assert_eq!(rewrite("\\left( 3, \\dfrac{\\pi}{2} \\right)"), "( 3,  \\frac{ \\pi} {2}  )");
    assert_eq!(rewrite("a+b"), "a + b");
}
