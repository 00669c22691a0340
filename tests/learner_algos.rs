//! SFT, logit distillation and trace distillation on tiny models (and SmolLM2 for traces),
//! checked against a PyTorch KL fixture, explicit recomputation and held-out loss.

mod common;

use candle_core::{Device, Tensor, Var};
use srlm::learner::kd::{self, chunk_kl, masked_mean, token_kl, KdConfig, KlDirection};
use srlm::learner::sft::{self, collate, completion_nll, mean_loss, Overlong, SftConfig, SftExample};
use srlm::learner::AlgoError;
use srlm::model::load::load_hf_weights;
use srlm::model::{CausalLm, LoraAdapters, LoraConfig, ModelConfig, Qwen2, TokenBatch, Weights};
use srlm::optim::{AdamW, AdamWConfig};

fn tiny(name: &str) -> (ModelConfig, Weights) {
    load_hf_weights(&common::fixtures().join("tiny").join(name)).unwrap()
}

/// A token-level task: continue the chain x → f(x) → f(f(x)) → … for three tokens after a
/// prompt holding its first k + 1 links. Held-out chains start at other x, but every transition
/// they need occurs in training at several positions, so learning f (not the sequences) pays.
fn chain(x: u32, k: usize) -> SftExample {
    let f = |x: u32| 10 + (x * 7 + 3) % 80;
    let links: Vec<u32> = std::iter::successors(Some(x), |&y| Some(f(y))).take(k + 4).collect();
    SftExample { prompt: [&[1], &links[..=k]].concat(), completion: links[k + 1..].to_vec() }
}

fn sft_cfg(epochs: usize) -> SftConfig {
    SftConfig {
        epochs,
        max_len: 16,
        overlong: Overlong::Truncate,
        token_budget: 8 * 16,
        grad_accum: 2,
        seed: 5,
        pad_id: 0,
        chunk_rows: 16,
        lanes: 1,
    }
}

fn split() -> (Vec<SftExample>, Vec<SftExample>) {
    let train = (10..90).filter(|x| x % 4 != 0).flat_map(|x| (0..4).map(move |k| chain(x, k))).collect();
    let held_out = (10..90).filter(|x| x % 4 == 0).map(|x| chain(x, x as usize % 3)).collect();
    (train, held_out)
}

#[test]
fn full_sft_lowers_held_out_loss() {
    let (config, base) = tiny("qwen2");
    let (weights, named) = base.to_vars().unwrap();
    let model = Qwen2::new(&config, &weights).unwrap();
    let (train, held_out) = split();
    let cfg = sft_cfg(12);
    let before = mean_loss(&model, &held_out, &cfg).unwrap();
    let mut opt = AdamW::new(named, AdamWConfig { lr: 3e-3, ..Default::default() }).unwrap();
    let mut steps = 0;
    let report = sft::train_sft(&model, &mut opt, &train, &cfg, 0, |s, _| -> Result<(), AlgoError> {
        steps += 1;
        assert!(s.tokens > 0 && !s.skipped);
        Ok(())
    })
    .unwrap();
    let after = mean_loss(&model, &held_out, &cfg).unwrap();
    eprintln!("full SFT held-out loss {before:.3} → {after:.3} in {} steps", report.steps);
    assert_eq!(steps, report.steps);
    assert!(before > 4.0, "starts near ln(96): {before}");
    assert!(after < 0.25 * before, "held-out loss {before} → {after}");
}

#[test]
fn sft_with_micro_batches_in_lanes_trains_the_same_weights() {
    let train_in = |lanes: usize| -> Vec<Vec<f32>> {
        let (config, base) = tiny("qwen2");
        let (weights, named) = base.to_vars().unwrap();
        let model = Qwen2::new(&config, &weights).unwrap();
        let mut opt = AdamW::new(named.clone(), AdamWConfig { lr: 3e-3, ..Default::default() }).unwrap();
        let cfg = SftConfig { grad_accum: 3, lanes, ..sft_cfg(1) };
        sft::train_sft(&model, &mut opt, &split().0, &cfg, 0, |_, _| -> Result<(), AlgoError> { Ok(()) }).unwrap();
        named.iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect()
    };
    let one_at_a_time = train_in(1);
    assert!(train_in(2) == one_at_a_time, "2 lanes trained other weights");
}

#[test]
fn lora_sft_lowers_held_out_loss_and_leaves_the_base_alone() {
    let (config, base) = tiny("qwen2");
    let lora = LoraConfig {
        r: 8,
        alpha: 16.0,
        dropout: 0.05,
        target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"].map(String::from).to_vec(),
        seed: 3,
    };
    let adapters = LoraAdapters::init(&lora, &base, &config).unwrap();
    let train_model = Qwen2::with_lora(&config, &base, &adapters, true).unwrap();
    let eval_model = Qwen2::with_lora(&config, &base, &adapters, false).unwrap();
    let (train, held_out) = split();
    let cfg = sft_cfg(12);
    let before = mean_loss(&eval_model, &held_out, &cfg).unwrap();
    let mut opt = AdamW::new(adapters.vars(), AdamWConfig { lr: 2e-2, ..Default::default() }).unwrap();
    sft::train_sft(&train_model, &mut opt, &train, &cfg, 0, |_, _| Ok::<(), AlgoError>(())).unwrap();
    let after = mean_loss(&eval_model, &held_out, &cfg).unwrap();
    eprintln!("LoRA SFT held-out loss {before:.3} → {after:.3}");
    assert!(after < 0.4 * before, "held-out loss {before} → {after}");
    let (_, untouched) = tiny("qwen2");
    for ((_, a), (_, b)) in base.iter().zip(untouched.iter()) {
        assert_eq!(a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }
}

#[test]
fn accumulated_micro_batches_give_the_big_batch_gradient() {
    let (config, base) = tiny("qwen2");
    let (weights, named) = base.to_vars().unwrap();
    let vars: Vec<Var> = named.iter().map(|(_, v)| v.clone()).collect();
    let model = Qwen2::new(&config, &weights).unwrap();
    let opt = AdamW::new(named, AdamWConfig::default()).unwrap();
    let (a, b, c) = (chain(11, 0), chain(30, 2), SftExample { prompt: vec![1, 4, 5, 6], completion: vec![7, 2] });
    let whole = collate(&[&a, &b, &c], 0, &Device::Cpu).unwrap();
    let total = whole.targets as f64;
    let big = (completion_nll(&model, &whole, 5).unwrap() / total).unwrap().backward().unwrap();
    let mut acc = opt.accumulator();
    // Three micro-batches: the accumulator's first sum and then its in-place add.
    for rows in [vec![&a], vec![&b], vec![&c]] {
        let micro = collate(&rows, 0, &Device::Cpu).unwrap();
        acc.add(&(completion_nll(&model, &micro, 5).unwrap() / total).unwrap().backward().unwrap()).unwrap();
    }
    for v in &vars {
        let x: Vec<f32> = big.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let y: Vec<f32> = acc.get(v).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let diff = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-5, "accumulated gradient differs by {diff}");
    }
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    common::leaves(v).iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn kl_values_and_gradients_match_pytorch() {
    let fx = common::read_json(&common::fixtures().join("kd_reference.json"));
    let dev = Device::Cpu;
    let student = Tensor::from_vec(floats(&fx["student"]), (6, 11), &dev).unwrap();
    let teacher = Tensor::from_vec(floats(&fx["teacher"]), (6, 11), &dev).unwrap();
    let w = Tensor::from_vec(floats(&fx["weights"]), 6, &dev).unwrap();
    for case in fx["cases"].as_array().unwrap() {
        let direction = if case["direction"] == "forward" { KlDirection::Forward } else { KlDirection::Reverse };
        let s = Var::from_tensor(&student).unwrap();
        let kl = chunk_kl(s.as_tensor(), &teacher, case["temperature"].as_f64().unwrap(), direction).unwrap();
        let got: Vec<f32> = kl.to_vec1().unwrap();
        let grads = (kl * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let grad: Vec<f32> = grads.get(s.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5 + 1e-4 * y.abs());
        assert!(close(&got, &floats(&case["kl"])), "{case}: KL {got:?}");
        assert!(close(&grad, &floats(&case["grad"])), "{case}: grad {grad:?}");
    }
}

#[test]
fn chunked_token_kl_equals_kl_of_full_logits() {
    let (sc, sw) = tiny("qwen2");
    let (tc, tw) = tiny("llama");
    let (student, teacher) = (Qwen2::new(&sc, &sw).unwrap(), Qwen2::new(&tc, &tw).unwrap());
    let batch = TokenBatch::right_padded(&[vec![1, 5, 9, 40, 2], vec![1, 70, 3]], 0, &Device::Cpu).unwrap();
    for direction in [KlDirection::Forward, KlDirection::Reverse] {
        let chunked = token_kl(&student, &teacher, &batch, 1.5, direction, 3).unwrap().to_vec2::<f32>().unwrap();
        let ls = student.forward_train(&batch.ids, Some(&batch.mask)).unwrap();
        let lt = teacher.forward_train(&batch.ids, Some(&batch.mask)).unwrap();
        for (row, len) in [(0usize, 5usize), (1, 3)] {
            // One KL per predicted position: T − 1 of the padded length 5.
            assert_eq!(chunked[row].len(), 4);
            for (j, &got) in chunked[row].iter().enumerate() {
                let pick = |l: &Tensor| l.get(row).unwrap().narrow(0, j, 1).unwrap();
                let full: f32 = chunk_kl(&pick(&ls), &pick(&lt), 1.5, direction).unwrap().to_vec1::<f32>().unwrap()[0];
                let expected = if j + 1 < len { full } else { 0.0 };
                assert!((got - expected).abs() < 1e-5, "{direction:?} ({row}, {j}): {got} vs {expected}");
                assert!(got >= 0.0);
            }
        }
    }
    let same = token_kl(&student, &student, &batch, 1.0, KlDirection::Forward, 4).unwrap();
    assert!(same.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-5, "KL(p‖p) = 0");
}

#[test]
fn forward_kl_steps_pull_the_student_towards_the_teacher() {
    let (sc, sw) = tiny("qwen2");
    let (tc, tw) = tiny("llama");
    let teacher = Qwen2::new(&tc, &tw).unwrap();
    let (weights, named) = sw.to_vars().unwrap();
    let vars: Vec<Var> = named.into_iter().map(|(_, v)| v).collect();
    let student = Qwen2::new(&sc, &weights).unwrap();
    let examples: Vec<SftExample> = (10..26).map(|x| chain(x, 1)).collect();
    let rows: Vec<&SftExample> = examples.iter().collect();
    let batch = collate(&rows, 0, &Device::Cpu).unwrap();
    let cfg = KdConfig { temperature: 1.0, direction: KlDirection::Forward, chunk_rows: 16 };
    let named = vars.iter().enumerate().map(|(i, v)| (format!("param.{i}"), v.clone())).collect();
    let mut opt = AdamW::new(named, AdamWConfig { lr: 1e-2, max_grad_norm: Some(1.0), ..Default::default() }).unwrap();
    let first = kd::kd_step(&student, &teacher, &mut opt, &batch, &cfg).unwrap();
    for _ in 0..40 {
        kd::kd_step(&student, &teacher, &mut opt, &batch, &cfg).unwrap();
    }
    let kl = token_kl(&student, &teacher, &batch.tokens, 1.0, KlDirection::Forward, 16).unwrap();
    let last = masked_mean(&kl, &batch.loss_mask).unwrap().to_scalar::<f32>().unwrap() as f64;
    eprintln!("forward KL {:.4} → {last:.4}", first.loss);
    assert!(last < 0.5 * first.loss, "KL {} → {last}", first.loss);
}

struct Digits;
impl srlm::generate::TextDecoder for Digits {
    fn decode_text(&self, ids: &[u32]) -> Result<String, String> {
        Ok(ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" "))
    }
}

#[test]
fn on_policy_batches_hold_the_students_samples_as_completions() {
    let (sc, sw) = tiny("qwen2");
    let student = Qwen2::new(&sc, &sw).unwrap();
    let gen = srlm::generate::GenerationConfig {
        sampling: Default::default(),
        max_new_tokens: 5,
        min_new_tokens: 5,
        eos_ids: vec![2],
        stop: Default::default(),
        seed: 9,
    };
    let batch = kd::on_policy_batch(&student, &Digits, &[vec![1, 7], vec![1, 8, 9]], 2, 0, &gen, 0).unwrap();
    assert_eq!(batch.targets, 4 * 5);
    let ids = batch.tokens.ids.to_vec2::<u32>().unwrap();
    assert_eq!(&ids[2][..3], &[1, 8, 9]);
    let mask = batch.loss_mask.to_vec2::<f32>().unwrap();
    assert_eq!(mask[0], vec![0., 1., 1., 1., 1., 1., 0.], "row 0: prompt of 2, 5 sampled, 1 pad");
}

#[test]
fn teacher_and_student_must_share_a_tokenizer() {
    let (Some(smol), Some(qwen)) = (common::real_model(common::SMOL_GGUF), common::real_model(common::QWEN_GGUF)) else {
        return;
    };
    let smol = srlm::tokenizer::Tokenizer::from_gguf_file(&smol).unwrap();
    let qwen = srlm::tokenizer::Tokenizer::from_gguf_file(&qwen).unwrap();
    kd::check_shared_tokenizer(&smol, &smol).unwrap();
    let err = kd::check_shared_tokenizer(&qwen, &smol).unwrap_err().to_string();
    assert!(err.contains("vocabulary sizes") && err.contains("teacher"), "{err}");
}

#[test]
fn trace_distillation_writes_only_correct_traces() {
    use srlm::data::{question_messages, PromptFormat};
    use srlm::learner::traces::{distill_traces, Problem, TraceLayout};
    use srlm::reward::{grade, Benchmark, Gold};
    let Some(path) = common::real_model(common::SMOL_GGUF) else { return };
    let teacher = srlm::model::LoadedModel::load(path.to_str().unwrap(), &Device::Cpu, candle_core::DType::F32).unwrap();
    let template = teacher.tokenizer.chat_template().unwrap();
    let problems = vec![
        Problem { messages: question_messages("What is 2 + 2? Reply with only the number.", None), gold: Gold::number(4.0).unwrap() },
        Problem { messages: question_messages("What is 1 + 1? Reply with only the number.", None), gold: Gold::number(2.0).unwrap() },
    ];
    let gen = srlm::generate::GenerationConfig {
        sampling: srlm::sampling::SamplingParams { temperature: 0.7, ..Default::default() },
        max_new_tokens: 12,
        min_new_tokens: 0,
        eos_ids: teacher.config.eos_token_ids.clone(),
        stop: Default::default(),
        seed: 1,
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("traces.jsonl");
    let model = teacher.inference_model().unwrap();
    let plain = PromptFormat::Plain;
    let stats = distill_traces(
        &model,
        &teacher.tokenizer,
        &template,
        &problems,
        6,
        &gen,
        Benchmark::Gsm8k,
        plain,
        TraceLayout::Any,
        &out,
        &|_, _| true,
    )
    .unwrap();
    eprintln!("{stats:?}");
    assert_eq!(stats.samples, 12);
    assert!(stats.kept >= 1, "a 135M model answers 2 + 2 at least once in 6 tries: {stats:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), stats.kept);
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let messages = row["messages"].as_array().unwrap();
        let question = messages[0]["content"].as_str().unwrap();
        let gold = Gold::number(if question.contains("2 + 2") { 4.0 } else { 2.0 }).unwrap();
        assert_eq!(messages.last().unwrap()["role"], "assistant");
        assert!(grade(Benchmark::Gsm8k, messages.last().unwrap()["content"].as_str().unwrap(), &gold).correct, "{line}");
    }
    // The same samples (one seed) with the r1 layout required: the bare numbers asked for have no
    // think/answer tags, so every correct trace is left out, and counted.
    let r1_out = dir.path().join("r1.jsonl");
    let (r1, require) = (PromptFormat::R1, TraceLayout::Require);
    let required =
        distill_traces(&model, &teacher.tokenizer, &template, &problems, 6, &gen, Benchmark::Gsm8k, r1, require, &r1_out, &|_, _| true)
            .unwrap();
    assert_eq!((required.kept, required.unformatted, required.samples), (0, stats.kept, 12), "{required:?}");
    assert_eq!(std::fs::read_to_string(&r1_out).unwrap(), "");
    // Rewritten instead: the same traces, each now the number inside the r1 tags.
    let rewrite = TraceLayout::Rewrite;
    let rewritten =
        distill_traces(&model, &teacher.tokenizer, &template, &problems, 6, &gen, Benchmark::Gsm8k, r1, rewrite, &r1_out, &|_, _| true)
            .unwrap();
    assert_eq!((rewritten.kept, rewritten.unformatted), (stats.kept, stats.kept), "{rewritten:?}");
    let sampled: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (line, before) in std::fs::read_to_string(&r1_out).unwrap().lines().zip(&sampled) {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let reply = row["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
        let before = before["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap();
        let answer = if row["messages"][0]["content"].as_str().unwrap().contains("2 + 2") { "4" } else { "2" };
        assert_eq!(reply, r1.lay_out(&r1.reasoning_of(before), answer), "{line}");
    }
    // A stop asked after the first problem: an error saying how far it got, the old file kept.
    // With 32 samples a problem fills the teacher's batch alone, so the stop falls between problems.
    assert_eq!(srlm::learner::traces::problems_per_batch(srlm::learner::traces::TEACHER_ROWS), 1);
    let go_on = |done: usize, total: usize| {
        assert_eq!(total, 2);
        done < 1
    };
    let n = srlm::learner::traces::TEACHER_ROWS;
    let err =
        distill_traces(&model, &teacher.tokenizer, &template, &problems, n, &gen, Benchmark::Gsm8k, plain, TraceLayout::Any, &out, &go_on)
            .unwrap_err();
    assert_eq!(err.to_string(), "stopped after 1 of 2 problems; no traces written");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
}
