//! Re-grading: a `{"benchmark", "completion", "gold"}` line (or an eval log line) → the same
//! line with `extracted` and `correct` set by the current checker.

use serde_json::Value;

use crate::data::gold_from_answer;
use crate::reward::{grade, Benchmark};

/// The line with `extracted` (string or null) and `correct` replaced; other fields kept in order.
pub fn regrade_line(line: &Value) -> Result<Value, String> {
    let Value::Object(obj) = line else {
        return Err("line is not a JSON object".into());
    };
    let benchmark: Benchmark = match obj.get("benchmark") {
        Some(Value::String(name)) => name.parse().map_err(|e| format!("{e}"))?,
        Some(_) => return Err("'benchmark' is not a string".into()),
        None => return Err("no 'benchmark' field".into()),
    };
    let completion = obj.get("completion").ok_or("no 'completion' field")?.as_str().ok_or("'completion' is not a string")?;
    let gold = obj.get("gold").filter(|g| !g.is_null()).ok_or("no 'gold' field")?;
    let gold = gold_from_answer(benchmark, gold).map_err(|e| format!("'gold': {e}"))?;
    let verdict = grade(benchmark, completion, &gold);
    let mut out = obj.clone();
    out.insert("extracted".into(), verdict.extracted.map_or(Value::Null, Value::String));
    out.insert("correct".into(), Value::Bool(verdict.correct));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn grades_each_benchmark_in_its_own_gold_format() {
        let cases = [
            (json!({"benchmark": "gsm8k", "completion": "So \\boxed{1,234}", "gold": "work\n#### 1234"}), Some("1,234"), true),
            (json!({"benchmark": "math500", "completion": "\\boxed{\\dfrac12}", "gold": "\\frac{1}{2}"}), Some("\\dfrac12"), true),
            (json!({"benchmark": "olympiadbench", "completion": "\\boxed{3}", "gold": ["$4$"]}), Some("3"), false),
            (json!({"benchmark": "minerva", "completion": "\\boxed{7}", "gold": "so \\boxed{7}."}), Some("7"), true),
            (json!({"benchmark": "minerva_math", "completion": "\\boxed{7}", "gold": "7"}), Some("7"), true),
            (json!({"benchmark": "amc23", "completion": "no answer here", "gold": 27.0}), None, false),
        ];
        for (line, extracted, correct) in cases {
            let out = regrade_line(&line).unwrap();
            assert_eq!(out["extracted"], extracted.map_or(Value::Null, |s| json!(s)), "{line}");
            assert_eq!(out["correct"], json!(correct), "{line}");
            assert_eq!(out["gold"], line["gold"]);
        }
    }

    #[test]
    fn replaces_stale_verdicts_and_keeps_field_order() {
        let line =
            json!({"benchmark": "gsm8k", "index": 3, "completion": "\\boxed{5}", "gold": "#### 5", "extracted": "4", "correct": false});
        let out = regrade_line(&line).unwrap();
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["benchmark", "index", "completion", "gold", "extracted", "correct"]);
        assert_eq!(out["extracted"], json!("5"));
        assert_eq!(out["correct"], json!(true));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let err = |v: Value| regrade_line(&v).unwrap_err();
        assert!(err(json!({"benchmark": "mmlu", "completion": "", "gold": "1"})).contains("unknown benchmark 'mmlu'"));
        assert!(err(json!({"benchmark": "gsm8k", "gold": "#### 1"})).contains("'completion'"));
        assert!(err(json!({"benchmark": "gsm8k", "completion": "1"})).contains("'gold'"));
        assert!(err(json!({"benchmark": "gsm8k", "completion": "1", "gold": "no hashes"})).contains("####"));
        assert!(err(json!([1, 2])).contains("not a JSON object"));
    }
}
