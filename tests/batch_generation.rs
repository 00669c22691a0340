//! Batched generation of different prompts: left padding, per-row positions and the key mask
//! give each prompt the tokens it gets when generated alone.

mod common;

use common::fixtures;
use srlm::generate::{generate_batch, generate_group, FinishReason, GenerationConfig, TextDecoder};
use srlm::model::load::load_hf_weights;
use srlm::model::Qwen2;
use srlm::sampling::{SamplingParams, StopStrings};

/// The tiny fixtures have no tokenizer: id i decodes to one letter.
struct Letters;

impl TextDecoder for Letters {
    fn decode_text(&self, ids: &[u32]) -> Result<String, String> {
        Ok(ids.iter().map(|&i| char::from(b'!' + (i % 90) as u8)).collect())
    }
}

fn config(sampling: SamplingParams, eos_ids: Vec<u32>) -> GenerationConfig {
    GenerationConfig { sampling, max_new_tokens: 12, min_new_tokens: 0, eos_ids, stop: StopStrings::default(), seed: 3 }
}

/// Prompts of different lengths, so every row but the longest is padded.
fn prompts() -> Vec<Vec<u32>> {
    vec![vec![9, 40, 71, 12, 33], vec![17], vec![5, 88, 61], vec![70, 70, 2, 45, 19, 64, 30, 8], vec![51, 23]]
}

fn check_batch_equals_alone(fixture: &str, gen: &GenerationConfig) -> Vec<FinishReason> {
    let (cfg, w) = load_hf_weights(&fixtures().join(fixture)).unwrap();
    let model = Qwen2::for_inference(&cfg, &w).unwrap();
    let prompts = prompts();
    let streams: Vec<u64> = (0..prompts.len() as u64).map(|i| 10 + 3 * i).collect();
    let batch = generate_batch(&model, &Letters, &prompts, &streams, gen, |_, _| {}).unwrap();
    assert_eq!(batch.len(), prompts.len());
    for (i, (c, p)) in batch.iter().zip(&prompts).enumerate() {
        let alone = generate_group(&model, &Letters, p, 1, streams[i], gen, |_, _| {}).unwrap().remove(0);
        assert_eq!(c.ids, alone.ids, "{fixture} prompt {i}");
        assert_eq!(c.finish_reason, alone.finish_reason, "{fixture} prompt {i}");
        assert_eq!(c.text, alone.text);
        for (a, b) in c.logprobs.iter().zip(&alone.logprobs) {
            assert!((a - b).abs() < 1e-4, "{fixture} prompt {i}: {a} vs {b}");
        }
    }
    batch.iter().map(|c| c.finish_reason).collect()
}

#[test]
fn greedy_batch_equals_each_prompt_alone() {
    for fixture in ["tiny/qwen2", "tiny/llama", "tiny/qwen3"] {
        check_batch_equals_alone(fixture, &config(SamplingParams::greedy(), vec![]));
    }
}

#[test]
fn sampled_batch_with_early_finishers_equals_alone() {
    // Many end ids: some rows leave the batch early, so the cache and padding are retained by row.
    let sampling = SamplingParams { temperature: 1.0, top_p: 0.95, top_k: 40, greedy: false };
    let reasons = check_batch_equals_alone("tiny/qwen2", &config(sampling, vec![2, 3, 4, 5]));
    assert!(reasons.contains(&FinishReason::Eos), "{reasons:?}");
    assert!(reasons.contains(&FinishReason::Length), "{reasons:?}");
}

#[test]
fn empty_prompt_or_missing_stream_is_an_error_and_no_prompts_is_empty() {
    let (cfg, w) = load_hf_weights(&fixtures().join("tiny/qwen2")).unwrap();
    let model = Qwen2::for_inference(&cfg, &w).unwrap();
    let gen = config(SamplingParams::greedy(), vec![]);
    assert!(generate_batch(&model, &Letters, &[vec![1], vec![]], &[0, 1], &gen, |_, _| {}).is_err());
    assert!(generate_batch(&model, &Letters, &[vec![1]], &[], &gen, |_, _| {}).is_err());
    assert!(generate_batch(&model, &Letters, &[], &[], &gen, |_, _| {}).unwrap().is_empty());
}

#[test]
fn the_device_sampler_generates_the_host_samplers_completions() {
    // Same streams, same inverse CDF in id order: on CPU tensors the two places agree token for
    // token (up to summation rounding), including rows leaving early and end ids hidden until
    // min_new_tokens.
    use srlm::generate::{generate_group_with, SamplerPlace};
    let (cfg, w) = load_hf_weights(&fixtures().join("tiny/qwen2")).unwrap();
    let model = Qwen2::for_inference(&cfg, &w).unwrap();
    let mut gen = config(SamplingParams { temperature: 0.9, ..Default::default() }, vec![2, 3, 4, 5, 6, 7]);
    gen.min_new_tokens = 3;
    let run = |place| generate_group_with(&model, &Letters, &[9, 40, 71], 24, 0, &gen, place, |_, _| {}).unwrap();
    let (host, device) = (run(SamplerPlace::Host), run(SamplerPlace::Device));
    let same = host.iter().zip(&device).filter(|(a, b)| a.ids == b.ids).count();
    assert!(same >= 22, "only {same}/24 completions agree");
    assert!(device.iter().any(|c| c.finish_reason == FinishReason::Eos), "no row ended early");
    for c in &device {
        assert!(c.ids.len() >= 3 && !c.ids[..2].iter().any(|id| gen.eos_ids.contains(id)), "{:?}", c.ids);
    }
    for (a, b) in host.iter().zip(&device).filter(|(a, b)| a.ids == b.ids) {
        assert_eq!(a.finish_reason, b.finish_reason);
        for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }
}
