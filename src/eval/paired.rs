//! Two evaluations of the same problems, compared problem by problem: which each got right,
//! McNemar's exact test on the pairs where they disagree, and format compliance on both sides.
//!
//! McNemar's test asks whether "right before, wrong after" and "wrong before, right after" are
//! equally likely. Under that hypothesis each disagreeing pair is a fair coin, so the two-sided
//! exact p-value is twice the binomial tail of the smaller count (capped at 1).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::log::CompletionRecord;
use super::report::{share_kept, EvalSettings};
use super::EvalError;
use crate::reward::Benchmark;

/// One evaluation folder as `srlm eval` leaves it.
pub struct EvalRun {
    pub dir: PathBuf,
    pub settings: EvalSettings,
    pub records: Vec<CompletionRecord>,
}

impl EvalRun {
    /// Reads `settings.json` and `completions.jsonl`; any unreadable line is an error naming it.
    pub fn read(dir: &Path) -> Result<EvalRun, EvalError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map(|text| (path.clone(), text)).map_err(|source| EvalError::Io { path, source })
        };
        let (path, text) = read("settings.json")?;
        let settings = serde_json::from_str(&text).map_err(|e| EvalError::Log { path, line: e.line(), msg: e.to_string() })?;
        let (path, text) = read("completions.jsonl")?;
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let record = serde_json::from_str(line).map_err(|e| EvalError::Log { path: path.clone(), line: i + 1, msg: e.to_string() })?;
            records.push(record);
        }
        Ok(EvalRun { dir: dir.to_path_buf(), settings, records })
    }
}

/// One sample of one problem, graded on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pair {
    pub benchmark: Benchmark,
    pub index: usize,
    pub problem_id: String,
    pub sample: usize,
    pub before: bool,
    pub after: bool,
    pub extracted_before: Option<String>,
    pub extracted_after: Option<String>,
    pub format_before: Option<bool>,
    pub format_after: Option<bool>,
}

/// One benchmark's 2 × 2 table and its test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedSummary {
    pub benchmark: Benchmark,
    pub pairs: usize,
    pub both_right: usize,
    pub only_before: usize,
    pub only_after: usize,
    pub both_wrong: usize,
    pub accuracy_before: f64,
    pub accuracy_after: f64,
    /// Two-sided exact McNemar p-value.
    pub mcnemar_p: f64,
    pub format_before: Option<f64>,
    pub format_after: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error(transparent)]
    Read(#[from] EvalError),
    #[error("the two evaluations differ in {field} ({before} vs {after}); compare runs made with the same settings")]
    Settings { field: &'static str, before: String, after: String },
    #[error("{benchmark} problem {index} sample {sample} is in {} but not in {}; evaluate the same problems on both sides", has.display(), lacks.display())]
    Unpaired { benchmark: Benchmark, index: usize, sample: usize, has: PathBuf, lacks: PathBuf },
}

/// Every sample of `before` with its counterpart in `after`, in benchmark, problem, sample order.
pub fn pair_up(before: &EvalRun, after: &EvalRun) -> Result<Vec<Pair>, PairError> {
    same_settings(&before.settings, &after.settings)?;
    let (b, a) = (by_key(before), by_key(after));
    let unpaired = |r: &CompletionRecord, has: &EvalRun, lacks: &EvalRun| PairError::Unpaired {
        benchmark: r.benchmark,
        index: r.index,
        sample: r.sample,
        has: has.dir.clone(),
        lacks: lacks.dir.clone(),
    };
    if let Some(r) = a.iter().find(|(k, _)| !b.contains_key(*k)).map(|(_, r)| *r) {
        return Err(unpaired(r, after, before));
    }
    let format = before.settings.format;
    b.iter()
        .map(|(k, rb)| {
            let ra = a.get(k).ok_or_else(|| unpaired(rb, before, after))?;
            Ok(Pair {
                benchmark: rb.benchmark,
                index: rb.index,
                problem_id: rb.problem_id.clone(),
                sample: rb.sample,
                before: rb.correct,
                after: ra.correct,
                extracted_before: rb.extracted.clone(),
                extracted_after: ra.extracted.clone(),
                format_before: format.followed_by(&rb.completion),
                format_after: format.followed_by(&ra.completion),
            })
        })
        .collect()
}

fn by_key(run: &EvalRun) -> BTreeMap<(&'static str, usize, usize), &CompletionRecord> {
    run.records.iter().map(|r| ((r.benchmark.name(), r.index, r.sample), r)).collect()
}

/// The settings that decide what a completion means; the model (and adapter) may differ.
fn same_settings(b: &EvalSettings, a: &EvalSettings) -> Result<(), PairError> {
    let fields: [(&'static str, String, String); 6] = [
        ("format", b.format.to_string(), a.format.to_string()),
        ("k", b.k.to_string(), a.k.to_string()),
        ("greedy", b.greedy.to_string(), a.greedy.to_string()),
        ("temperature", b.temperature.to_string(), a.temperature.to_string()),
        ("top_p", b.top_p.to_string(), a.top_p.to_string()),
        ("max_new_tokens", b.max_new_tokens.to_string(), a.max_new_tokens.to_string()),
    ];
    // Greedy decoding ignores temperature and top-p.
    let sampling_only = |f: &str| b.greedy && a.greedy && (f == "temperature" || f == "top_p");
    match fields.into_iter().find(|(f, x, y)| x != y && !sampling_only(f)) {
        Some((field, before, after)) => Err(PairError::Settings { field, before, after }),
        None => Ok(()),
    }
}

/// Per benchmark, in the order the pairs name them.
pub fn summarise_pairs(pairs: &[Pair]) -> Vec<PairedSummary> {
    let mut order: Vec<Benchmark> = Vec::new();
    for p in pairs {
        if !order.contains(&p.benchmark) {
            order.push(p.benchmark);
        }
    }
    order
        .into_iter()
        .map(|bench| {
            let ps: Vec<&Pair> = pairs.iter().filter(|p| p.benchmark == bench).collect();
            let count = |f: &dyn Fn(&Pair) -> bool| ps.iter().filter(|p| f(p)).count();
            let n = ps.len();
            let only_before = count(&|p| p.before && !p.after);
            let only_after = count(&|p| !p.before && p.after);
            let rate = |k: usize| k as f64 / n.max(1) as f64;
            PairedSummary {
                benchmark: bench,
                pairs: n,
                both_right: count(&|p| p.before && p.after),
                only_before,
                only_after,
                both_wrong: count(&|p| !p.before && !p.after),
                accuracy_before: rate(count(&|p| p.before)),
                accuracy_after: rate(count(&|p| p.after)),
                mcnemar_p: mcnemar_exact(only_before, only_after),
                format_before: share_kept(ps.iter().map(|p| p.format_before)),
                format_after: share_kept(ps.iter().map(|p| p.format_after)),
            }
        })
        .collect()
}

/// Two-sided exact McNemar p-value for `b` and `c` discordant pairs.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    // P(X ≤ min(b, c)) for X ~ Binomial(n, 1/2), each term from the log of C(n, i) / 2ⁿ.
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64;
    let mut tail = 0.0f64;
    for i in 0..=b.min(c) {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// The comparison as Markdown: one summary row per benchmark, then every problem on which the
/// two sides disagree.
pub fn markdown(before: &EvalRun, after: &EvalRun, pairs: &[Pair], summaries: &[PairedSummary]) -> String {
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let opt = |x: Option<f64>| x.map(pct).unwrap_or_else(|| "–".into());
    let mut out = format!(
        "before: {}\nafter:  {}\nformat {}, {} sample(s) per problem, {}, ≤ {} new tokens\n\n",
        label(&before.settings),
        label(&after.settings),
        before.settings.format,
        before.settings.k,
        if before.settings.greedy {
            "greedy".to_string()
        } else {
            format!("T {} top-p {}", before.settings.temperature, before.settings.top_p)
        },
        before.settings.max_new_tokens
    );
    out.push_str("| benchmark | pairs | accuracy before | accuracy after | both right | only before | only after | both wrong | McNemar p | format before | format after |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for s in summaries {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {} | {} |\n",
            s.benchmark,
            s.pairs,
            pct(s.accuracy_before),
            pct(s.accuracy_after),
            s.both_right,
            s.only_before,
            s.only_after,
            s.both_wrong,
            s.mcnemar_p,
            opt(s.format_before),
            opt(s.format_after)
        ));
    }
    let differing: Vec<&Pair> = pairs.iter().filter(|p| p.before != p.after).collect();
    out.push_str(&format!("\nProblems graded differently ({}):\n\n", differing.len()));
    out.push_str(
        "| benchmark | index | id | sample | before | after | answer before | answer after |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mark = |ok: bool| if ok { "right" } else { "wrong" };
    let cell = |s: &Option<String>| s.as_deref().map(|a| a.replace('|', "\\|").replace('\n', " ")).unwrap_or_else(|| "–".into());
    for p in differing {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            p.benchmark,
            p.index,
            p.problem_id,
            p.sample,
            mark(p.before),
            mark(p.after),
            cell(&p.extracted_before),
            cell(&p.extracted_after)
        ));
    }
    out
}

fn label(s: &EvalSettings) -> String {
    match &s.adapter {
        Some(a) => format!("{} + adapter {a}", s.model),
        None => s.model.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-derived: n = 10 discordant, min 1: 2 · (C(10,0) + C(10,1)) / 2¹⁰ = 22/1024.
    #[test]
    fn mcnemar_matches_the_binomial_tail_by_hand() {
        assert!((mcnemar_exact(1, 9) - 22.0 / 1024.0).abs() < 1e-15);
        assert!((mcnemar_exact(9, 1) - 22.0 / 1024.0).abs() < 1e-15);
        // n = 6, min 0: 2 / 64.
        assert!((mcnemar_exact(0, 6) - 2.0 / 64.0).abs() < 1e-15);
        // n = 7, min 2: 2 · (1 + 7 + 21) / 128 = 58/128.
        assert!((mcnemar_exact(2, 5) - 58.0 / 128.0).abs() < 1e-15);
        // Balanced or empty: no evidence either way.
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(0, 1), 1.0);
    }

    fn record(index: usize, correct: bool, completion: &str) -> CompletionRecord {
        CompletionRecord {
            benchmark: Benchmark::Gsm8k,
            index,
            problem_id: format!("p{index}"),
            sample: 0,
            gold: serde_json::json!("#### 1"),
            prompt: String::new(),
            completion: completion.into(),
            extracted: Some(if correct { "1" } else { "2" }.into()),
            correct,
            tokens: 3,
            finish_reason: crate::generate::FinishReason::Eos,
            seconds: 0.0,
        }
    }

    fn run(dir: &str, model: &str, records: Vec<CompletionRecord>) -> EvalRun {
        let settings = EvalSettings {
            model: model.into(),
            adapter: None,
            format: crate::data::PromptFormat::R1,
            k: 1,
            greedy: true,
            temperature: 0.6,
            top_p: 0.95,
            max_new_tokens: 64,
            seed: 0,
        };
        EvalRun { dir: dir.into(), settings, records }
    }

    const KEPT: &str = "<think>a</think><answer>1</answer>";

    #[test]
    fn pairs_fill_the_two_by_two_table() {
        let outcomes = [(true, true), (true, false), (false, true), (false, true), (false, false)];
        let before = run("b", "base", outcomes.iter().enumerate().map(|(i, o)| record(i, o.0, "no tags")).collect());
        let after = run("a", "tuned", outcomes.iter().enumerate().rev().map(|(i, o)| record(i, o.1, KEPT)).collect());
        let pairs = pair_up(&before, &after).unwrap();
        assert_eq!(pairs.iter().map(|p| p.index).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        let s = &summarise_pairs(&pairs)[0];
        assert_eq!((s.pairs, s.both_right, s.only_before, s.only_after, s.both_wrong), (5, 1, 1, 2, 1));
        assert_eq!((s.accuracy_before, s.accuracy_after), (0.4, 0.6));
        assert_eq!(s.mcnemar_p, 1.0); // n = 3, min 1: 2 · (1 + 3) / 8 > 1
        assert_eq!((s.format_before, s.format_after), (Some(0.0), Some(1.0)));
        let text = markdown(&before, &after, &pairs, std::slice::from_ref(s));
        assert!(text.contains("Problems graded differently (3)"), "{text}");
    }

    #[test]
    fn different_settings_or_problems_are_refused_by_name() {
        let before = run("b", "base", vec![record(0, true, KEPT)]);
        let mut after = run("a", "tuned", vec![record(0, true, KEPT)]);
        after.settings.max_new_tokens = 128;
        let e = pair_up(&before, &after).unwrap_err().to_string();
        assert!(e.contains("max_new_tokens (64 vs 128)"), "{e}");
        // Greedy on both sides: the sampling settings do not matter.
        after.settings.max_new_tokens = 64;
        after.settings.temperature = 1.0;
        assert!(pair_up(&before, &after).is_ok());
        let after = run("a", "tuned", vec![record(0, true, KEPT), record(1, true, KEPT)]);
        let e = pair_up(&before, &after).unwrap_err().to_string();
        assert!(e.contains("problem 1 sample 0 is in a but not in b"), "{e}");
    }

    /// Large counts stay finite: 2 · P(X ≤ 400), X ~ Bin(1000, ½), z ≈ −6.3 → about 2.6e-10.
    #[test]
    fn mcnemar_survives_large_counts() {
        let p = mcnemar_exact(400, 600);
        assert!(p > 1e-10 && p < 1e-9, "{p}");
    }
}
