//! Data loaders on small files: Parquet (written by scripts/make_parquet_fixtures.py) against
//! the same rows as JSONL, chat JSONL, custom field names, and bad input naming file and line.

mod common;

use std::path::{Path, PathBuf};

use common::fixtures;
use serde_json::json;
use srlm::chat::Message;
use srlm::data::{load_chat_jsonl, load_problems, read_chat_jsonl, Fields, LoadOptions, OnBadRecord, Problem};
use srlm::reward::Benchmark;

fn data(name: &str) -> PathBuf {
    fixtures().join("data").join(name)
}

fn load(bench: Benchmark, path: &Path) -> Vec<Problem> {
    load_problems(bench, path, &LoadOptions::default()).unwrap().problems
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn parquet_rows_equal_the_same_rows_as_jsonl() {
    // snappy (GSM8K), zstd (MATH500), and a list column (OlympiadBench final_answer).
    for (bench, name, rows) in
        [(Benchmark::Gsm8k, "gsm8k_head", 5), (Benchmark::Math500, "math500_head", 4), (Benchmark::OlympiadBench, "olympiadbench_head", 4)]
    {
        let from_parquet = load(bench, &data(&format!("{name}.parquet")));
        let from_jsonl = load(bench, &data(&format!("{name}.jsonl")));
        assert_eq!(from_parquet.len(), rows, "{name}");
        for (p, j) in from_parquet.iter().zip(&from_jsonl) {
            assert_eq!((&p.id, &p.question, &p.answer, p.line), (&j.id, &j.question, &j.answer, j.line), "{name}");
            assert_eq!(p.gold, j.gold);
        }
    }
    let olympiad = load(Benchmark::OlympiadBench, &data("olympiadbench_head.parquet"));
    assert_eq!(olympiad[0].answer, json!(["2"]));
    assert_eq!(olympiad[0].id, "1606");
}

#[test]
fn custom_field_names_and_numeric_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path =
        write(dir.path(), "mine.jsonl", "{\"q\": \"1+1?\", \"a\": 2, \"key\": \"x1\"}\n\n{\"q\": \"Half?\", \"a\": \"\\\\frac12\"}\n");
    let opts = LoadOptions {
        fields: Some(Fields { question: "q".into(), answer: "a".into(), id: Some("key".into()) }),
        on_bad: OnBadRecord::Fail,
    };
    let loaded = load_problems(Benchmark::Math500, &path, &opts).unwrap();
    let ps = &loaded.problems;
    assert_eq!(ps.len(), 2);
    assert_eq!((ps[0].id.as_str(), ps[0].question.as_str(), ps[0].line), ("x1", "1+1?", 1));
    // No id field on line 3: the line number is the id.
    assert_eq!((ps[1].id.as_str(), ps[1].line), ("3", 3));
    assert_eq!(ps[1].gold.raw, "\\frac12");
}

#[test]
fn malformed_lines_name_file_and_line_or_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"question\": \"a\", \"answer\": \"#### 1\"}\n\
                {\"question\": \"b\"}\n\
                {\"question\": \"c\", \"answer\": \"#### 3\"}\n\
                {\"question\": \"d\", \"answ";
    let path = write(dir.path(), "gsm.jsonl", text);
    let err = load_problems(Benchmark::Gsm8k, &path, &LoadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("gsm.jsonl:2") && err.contains("'answer'"), "{err}");
    let skip = LoadOptions { fields: None, on_bad: OnBadRecord::Skip };
    let loaded = load_problems(Benchmark::Gsm8k, &path, &skip).unwrap();
    assert_eq!(loaded.problems.iter().map(|p| p.question.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    let lines: Vec<usize> = loaded.skipped.iter().map(|s| s.line).collect();
    assert_eq!(lines, [2, 4]);
    assert_eq!(loaded.skipped[0].reason, "no 'answer' field");
    assert!(loaded.skipped[1].reason.starts_with("invalid JSON"), "{}", loaded.skipped[1].reason);

    let truncated = write(dir.path(), "cut.jsonl", "{\"question\": \"a\", \"answer\": \"#### 1\"}\n{\"question\": \"b\", \"ans");
    let err = load_problems(Benchmark::Gsm8k, &truncated, &LoadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("cut.jsonl:2: invalid JSON"), "{err}");
    let bad_gold = write(dir.path(), "gold.jsonl", "{\"question\": \"a\", \"answer\": \"no final line\"}\n");
    let err = load_problems(Benchmark::Gsm8k, &bad_gold, &LoadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("gold.jsonl:1: 'answer'") && err.contains("####"), "{err}");
    let err = load_problems(Benchmark::Gsm8k, &dir.path().join("absent.jsonl"), &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("absent.jsonl"), "{err}");
    let err = load_problems(Benchmark::Gsm8k, &write(dir.path(), "x.csv", "a,b\n"), &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("x.csv: unknown data format"), "{err}");
}

#[test]
fn chat_jsonl_gives_messages_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let good = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello\"}]}\n\
                {\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"2+2?\"}], \"extra\": 1}\n";
    let path = write(dir.path(), "chat.jsonl", good);
    let records = read_chat_jsonl(&path).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].messages, vec![Message::new("user", "Hi"), Message::new("assistant", "Hello")]);
    assert_eq!(records[1].messages[0], Message::new("system", "Be brief."));
    assert_eq!(records[1].line, 2);

    let bad = format!("{good}{{\"messages\": [{{\"role\": \"user\"}}]}}\n{{\"messages\": []}}\n{{\"text\": \"x\"}}\n");
    let path = write(dir.path(), "bad.jsonl", &bad);
    let err = read_chat_jsonl(&path).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl:3") && err.contains("messages[0] has no string 'content'"), "{err}");
    let loaded = load_chat_jsonl(&path, OnBadRecord::Skip).unwrap();
    assert_eq!(loaded.records.len(), 2);
    assert_eq!(loaded.skipped.iter().map(|s| s.line).collect::<Vec<_>>(), [3, 4, 5]);
}
