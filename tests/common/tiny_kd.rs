//! A tiny student run with a `kd` stage (the arithmetic task, the character tokenizer) and a
//! tiny teacher sharing its tokenizer: the logit KD tests' fixtures.

use candle_core::{DType, Device};
use srlm::train::config::TrainConfig;

/// The run's config; `OUT` stands for its folder, and `[kd]` follows.
pub const TINY: &str = "stages = [\"kd\"]\nout_dir = \"OUT\"\nseed = 1\n[model]\nsource = \"tiny\"\n[data]\ntask = \"arithmetic\"\nformat = \"plain\"\ngold = \"number\"\nmax_operand = 10\ntrain_size = 64\nheldout_size = 4\n[eval]\nsamples = 1\nmax_new_tokens = 12\n[grpo]\nmax_new_tokens = 12\n[sft]\nmax_len = 64\n[runtime]\nmetrics_addr = \"\"\n";

pub fn tiny_config(out: &std::path::Path, kd: &str) -> Result<TrainConfig, String> {
    let text = format!("{}[kd]\n{kd}\n", TINY.replace("OUT", out.to_str().unwrap()));
    TrainConfig::from_toml(&text, "kd.toml").map_err(|e| e.to_string())
}

/// A tiny Qwen2 teacher at `dir/teacher`; `extra` adds a token its student lacks.
pub fn tiny_teacher(dir: &std::path::Path, extra: Option<&str>) {
    use srlm::synthetic::{char_vocab_size, tiny_qwen2_config, write_char_tokenizer};
    let config = tiny_qwen2_config(char_vocab_size());
    let weights = srlm::model::init::init_weights(&config, 0.3, 7, &Device::Cpu).unwrap();
    let tok_dir = dir.join("tok");
    std::fs::create_dir_all(&tok_dir).unwrap();
    write_char_tokenizer(&tok_dir).unwrap();
    let tokenizer = srlm::tokenizer::Tokenizer::from_hf_dir(&tok_dir).unwrap();
    srlm::model::export::export_weights(&config, &weights, Some(&tokenizer), &dir.join("teacher"), DType::F32, true).unwrap();
    if let Some(extra) = extra {
        let path = dir.join("teacher/tokenizer.json");
        let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let vocab = json["model"]["vocab"].as_object_mut().unwrap();
        vocab.insert(extra.into(), vocab.len().into());
        std::fs::write(&path, json.to_string()).unwrap();
    }
}
