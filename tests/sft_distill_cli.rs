//! `srlm sft` and `srlm distill` end to end on SmolLM2 (skipped without the checkpoint).

mod common;

use std::process::Command;

fn srlm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_srlm"))
}

#[test]
fn sft_recipe_with_an_unknown_key_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("r.toml");
    std::fs::write(&recipe, "model = \"m\"\ndata = \"d\"\nformat = \"chat\"\noutput = \"o\"\nepochz = 3\n").unwrap();
    let out = srlm().args(["sft", "--config", recipe.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("r.toml") && err.contains("epochz"), "{err}");
}

#[test]
fn lora_sft_writes_a_peft_adapter_that_loads() {
    let Some(model) = common::real_model(common::SMOL_GGUF) else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("chat.jsonl");
    let long = "very ".repeat(200);
    let rows = [
        ("What is 2 + 2?", "<think>\n2 + 2 = 4\n</think>\n<answer>\n4\n</answer>"),
        ("Name a colour.", "Blue."),
        ("Say something long.", long.as_str()),
    ];
    let lines: Vec<String> = rows
        .iter()
        .map(|(q, a)| serde_json::json!({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}).to_string())
        .collect();
    std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    let out_dir = dir.path().join("adapter");
    let recipe = dir.path().join("lora.toml");
    std::fs::write(
        &recipe,
        format!(
            "model = {:?}\ndata = {:?}\nformat = \"chat\"\noutput = {:?}\nsave = \"adapter\"\nlr = 1e-3\nmax_length = 128\n\
             overlong = \"drop\"\ntoken_budget = 256\nwarmup_steps = 0\n[lora]\nr = 4\nalpha = 8\ntarget_modules = [\"q_proj\", \"v_proj\"]\n",
            model.to_str().unwrap(),
            data.to_str().unwrap(),
            out_dir.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = srlm().args(["sft", "--config", recipe.to_str().unwrap()]).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("of the examples longer than max_len 128: 1 dropped, 0 truncated"), "{log}");
    let loaded = srlm::model::LoadedModel::load(model.to_str().unwrap(), &candle_core::Device::Cpu, candle_core::DType::F32).unwrap();
    let adapters = srlm::model::LoraAdapters::load_peft(&out_dir, &loaded.weights, &loaded.config).unwrap();
    assert_eq!(adapters.module_paths().count(), 2 * loaded.config.num_layers);
    // One step from B = 0 moves B away from zero.
    let (_, b) = adapters.factors("model.layers.0.self_attn.q_proj").unwrap();
    assert!(b.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);

    // `--adapter` everywhere: logprobs over the adapter equal the unmerged LoRA forward's.
    let (prompt, completion) = ("<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n", "2 + 2 = 4");
    let (m, a) = (model.to_str().unwrap(), out_dir.to_str().unwrap());
    let out =
        srlm().args(["logprobs", "--model", m, "--adapter", a, "--prompt", prompt, "--completion", completion, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<u32> = ["prompt_ids", "completion_ids"]
        .iter()
        .flat_map(|k| got[*k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32))
        .collect();
    let lora = srlm::model::Qwen2::with_lora(&loaded.config, &loaded.weights, &adapters, false).unwrap();
    let batch = srlm::model::TokenBatch::right_padded(&[ids], 0, &candle_core::Device::Cpu).unwrap();
    let want: Vec<f32> =
        srlm::model::token_logprobs(&lora, &batch, 1.0, false, 512).unwrap().logprobs.squeeze(0).unwrap().to_vec1().unwrap();
    let p = got["prompt_ids"].as_array().unwrap().len();
    let got: Vec<f64> = got["logprobs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(got.len(), want.len() - (p - 1));
    for (g, w) in got.iter().zip(&want[p - 1..]) {
        assert!((g - *w as f64).abs() < 1e-4, "merged {g} vs LoRA forward {w}");
    }
    // Greedy generation over the adapter equals the merged checkpoint's (`srlm export --adapter`).
    let merged = dir.path().join("merged");
    let out = srlm().args(["export", "--model", m, "--adapter", a, "--out", merged.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let generate = |args: &[&str]| {
        let out = srlm()
            .args(["generate", "--message", "What is 2 + 2?", "--greedy", "--max-new-tokens", "12", "--json"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["completions"][0]["ids"].clone()
    };
    assert_eq!(generate(&["--model", m, "--adapter", a]), generate(&["--model", merged.to_str().unwrap()]));
    // And the adapter is not a no-op: the base model's log-probs differ from the adapted ones.
    let base = srlm().args(["logprobs", "--model", m, "--prompt", prompt, "--completion", completion, "--json"]).output().unwrap();
    let base: serde_json::Value = serde_json::from_slice(&base.stdout).unwrap();
    let moved = base["logprobs"].as_array().unwrap().iter().zip(&got).map(|(b, g)| (b.as_f64().unwrap() - g).abs()).fold(0.0, f64::max);
    assert!(moved > 1e-6, "the adapter changed nothing ({moved})");
    // A directory without an adapter is refused by name.
    let out = srlm().args(["generate", "--model", m, "--adapter", dir.path().to_str().unwrap(), "--message", "hi"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("adapter_config.json"), "{err}");
}

#[test]
fn distill_reports_counts_matching_the_written_traces() {
    let Some(model) = common::real_model(common::SMOL_GGUF) else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gsm8k.jsonl");
    std::fs::write(&data, "{\"question\": \"What is 2 + 2? Reply with only the number.\", \"answer\": \"2 + 2 = 4\\n#### 4\"}\n").unwrap();
    let out_path = dir.path().join("traces.jsonl");
    let out = srlm()
        .args(["distill", "--teacher", model.to_str().unwrap(), "--data", data.to_str().unwrap()])
        .args(["--out", out_path.to_str().unwrap(), "--n", "4", "--max-new-tokens", "10", "--system", ""])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let kept: usize =
        log.split("kept ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{log}"));
    assert!(log.contains("1 problems, 4 samples"), "{log}");
    assert_eq!(std::fs::read_to_string(&out_path).unwrap().lines().count(), kept);
}

/// `--skip` passes over the file's first rows (a slice disjoint from an earlier `--limit`), and
/// skipping every row is refused by name before any model loads.
#[test]
fn distill_skip_samples_only_the_rows_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gsm8k.jsonl");
    let row = |a: u32| {
        serde_json::json!({"question": format!("What is {a} + {a}? Reply with only the number."), "answer": format!("#### {}", 2 * a)})
            .to_string()
    };
    std::fs::write(&data, format!("{}\n{}\n", row(3), row(2))).unwrap();
    let out_path = dir.path().join("traces.jsonl");
    let distill = |teacher: &str, skip: &str| {
        srlm()
            .args(["distill", "--teacher", teacher, "--data", data.to_str().unwrap(), "--skip", skip])
            .args(["--out", out_path.to_str().unwrap(), "--n", "4", "--max-new-tokens", "10", "--system", ""])
            .output()
            .unwrap()
    };
    let refused = distill("no-such-teacher", "2");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("--skip 2 leaves none of the 2 problems in") && err.contains("gsm8k.jsonl"), "{err}");
    let Some(model) = common::real_model(common::SMOL_GGUF) else { return };
    let out = distill(model.to_str().unwrap(), "1");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && log.contains("1 problems, 4 samples"), "{log}");
    let traces = std::fs::read_to_string(&out_path).unwrap();
    assert!(traces.lines().count() > 0, "SmolLM2 answered 2 + 2 in none of 4 samples: {log}");
    assert!(traces.lines().all(|t| t.contains("2 + 2") && !t.contains("3 + 3")), "{traces}");
}
