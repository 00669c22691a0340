//! Group sampling: one shared prefill gives the same tokens and log-probs as sampling each
//! sequence alone, and the behaviour log-probs equal what the learner recomputes.

mod common;

use candle_core::Device;
use common::fixtures;
use srlm::generate::{generate_group, FinishReason, GenerationConfig, TextDecoder};
use srlm::model::load::load_hf_weights;
use srlm::model::{token_logprobs, Qwen2, TokenBatch};
use srlm::sampling::{SamplingParams, StopStrings};

/// The tiny fixtures have no tokenizer: id i decodes to one letter.
struct Letters;

impl TextDecoder for Letters {
    fn decode_text(&self, ids: &[u32]) -> Result<String, String> {
        Ok(ids.iter().map(|&i| char::from(b'!' + (i % 90) as u8)).collect())
    }
}

fn config(temperature: f32) -> GenerationConfig {
    GenerationConfig {
        sampling: SamplingParams { temperature, top_p: 0.95, top_k: 40, greedy: false },
        max_new_tokens: 14,
        min_new_tokens: 0,
        // Several end ids so that some sequences finish early and leave the batch.
        eos_ids: vec![2, 3, 4, 5, 6, 7],
        stop: StopStrings::default(),
        seed: 7,
    }
}

#[test]
fn group_equals_sequences_sampled_alone() {
    let (cfg, w) = load_hf_weights(&fixtures().join("tiny/qwen2")).unwrap();
    let model = Qwen2::for_inference(&cfg, &w).unwrap();
    let prompt = [9u32, 40, 71, 12, 33];
    let mut gen = config(1.0);
    gen.eos_ids = vec![2, 3];
    let group = generate_group(&model, &Letters, &prompt, 6, 0, &gen, |_, _| {}).unwrap();
    let reasons: Vec<FinishReason> = group.iter().map(|c| c.finish_reason).collect();
    assert!(reasons.contains(&FinishReason::Eos), "{reasons:?}");
    assert!(reasons.contains(&FinishReason::Length), "{reasons:?}");
    for (i, c) in group.iter().enumerate() {
        let alone = generate_group(&model, &Letters, &prompt, 1, i as u64, &gen, |_, _| {}).unwrap().remove(0);
        assert_eq!(c.ids, alone.ids, "sequence {i}");
        assert_eq!(c.finish_reason, alone.finish_reason);
        for (a, b) in c.logprobs.iter().zip(&alone.logprobs) {
            assert!((a - b).abs() < 1e-5, "sequence {i}: {a} vs {b}");
        }
    }
    // Different streams give different samples.
    assert!(group.windows(2).any(|w| w[0].ids != w[1].ids));
}

#[test]
fn behaviour_logprobs_equal_the_learners() {
    let (cfg, w) = load_hf_weights(&fixtures().join("tiny/llama")).unwrap();
    let sampler = Qwen2::for_inference(&cfg, &w).unwrap();
    let learner = Qwen2::new(&cfg, &w).unwrap();
    let prompt = [1u32, 50, 22, 81];
    let gen = config(0.7);
    let group = generate_group(&sampler, &Letters, &prompt, 4, 0, &gen, |_, _| {}).unwrap();
    let seqs: Vec<Vec<u32>> = group.iter().map(|c| prompt.iter().chain(&c.ids).copied().collect()).collect();
    let batch = TokenBatch::right_padded(&seqs, 0, &Device::Cpu).unwrap();
    let learned: Vec<Vec<f32>> = token_logprobs(&learner, &batch, 0.7, false, 512).unwrap().logprobs.to_vec2().unwrap();
    for (c, row) in group.iter().zip(&learned) {
        let recomputed = &row[prompt.len() - 1..prompt.len() - 1 + c.ids.len()];
        for (behaviour, learner) in c.logprobs.iter().zip(recomputed) {
            // exp(difference) is the importance ratio: 1 when the policy has not moved.
            assert!((behaviour - learner).abs() < 1e-4, "{behaviour} vs {learner}");
        }
    }
}

#[test]
fn stop_strings_and_min_tokens() {
    let (cfg, w) = load_hf_weights(&fixtures().join("tiny/qwen3")).unwrap();
    let model = Qwen2::for_inference(&cfg, &w).unwrap();
    let prompt = [3u32, 14, 15, 92];
    let mut gen = config(1.0);
    gen.min_new_tokens = 14;
    let forced = generate_group(&model, &Letters, &prompt, 5, 0, &gen, |_, _| {}).unwrap();
    assert!(forced.iter().all(|c| c.ids.len() == 14 && c.finish_reason == FinishReason::Length));
    // Stop at the first letter the unforced sample would print at its third token.
    let free = generate_group(&model, &Letters, &prompt, 1, 0, &config(1.0), |_, _| {}).unwrap().remove(0);
    if free.ids.len() >= 3 {
        let third = Letters.decode_text(&free.ids[2..3]).unwrap();
        let mut gen = config(1.0);
        gen.stop = StopStrings::new([third.clone()]);
        let stopped = generate_group(&model, &Letters, &prompt, 1, 0, &gen, |_, _| {}).unwrap().remove(0);
        assert_eq!(stopped.finish_reason, FinishReason::Stop);
        assert!(!stopped.text.contains(&third));
        assert!(stopped.ids.len() <= 3);
    }
}
