//! The loaders read every row of the shared data sets in their published layouts.

use super::*;
use crate::reward::grade;

#[test]
fn loaders_read_every_row_of_the_shared_sets() {
    let dir = shared_data_dir();
    for (bench, rel, count) in crate::data::SHARED_FILES {
        let loaded = load_problems(bench, &dir.join(rel), &LoadOptions::default()).unwrap();
        assert_eq!(loaded.problems.len(), count, "{rel}");
        assert!(loaded.skipped.is_empty());
        let ids: std::collections::HashSet<&str> = loaded.problems.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), count, "{rel}: ids are not unique");
        for (i, p) in loaded.problems.iter().enumerate() {
            assert_eq!(p.line, i + 1, "{rel}: no blank lines in the shared files");
            assert!(!p.question.trim().is_empty());
            assert_eq!(p.benchmark, bench);
            // The stored answer re-parses to the same gold (what `srlm grade` relies on).
            assert_eq!(gold_from_answer(bench, &p.answer).unwrap(), p.gold, "{rel} line {}", p.line);
        }
    }
}

#[test]
fn eval_files_sit_where_benchmark_file_says() {
    let dir = shared_data_dir();
    for bench in Benchmark::ALL {
        assert!(benchmark_file(&dir, bench).is_file(), "{bench}");
    }
    let first = load_problems(Benchmark::Gsm8k, &benchmark_file(&dir, Benchmark::Gsm8k), &LoadOptions::default()).unwrap();
    let p = &first.problems[0];
    assert!(p.question.starts_with("Janet’s ducks lay 16 eggs per day."));
    assert!(grade(Benchmark::Gsm8k, "so she makes \\boxed{18} dollars", &p.gold).correct);
    let math = load_problems(Benchmark::Math500, &benchmark_file(&dir, Benchmark::Math500), &LoadOptions::default()).unwrap();
    assert_eq!(math.problems[0].id, "test/precalculus/807.json");
    assert_eq!(math.problems[0].gold.raw, "\\left( 3, \\frac{\\pi}{2} \\right)");
}
