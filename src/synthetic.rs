//! The embedded default's task: small integer arithmetic in the reasoning format, a
//! character-level tokenizer written as real HF files, and a tiny Qwen2 configuration, so that
//! `srlm train` with no arguments exercises the whole pipeline on CPU in minutes.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::model::ModelConfig;

/// One problem: `question` is what the user asks; `answer` is the gold integer.
#[derive(Debug, Clone, PartialEq)]
pub struct ArithmeticProblem {
    pub question: String,
    pub answer: i64,
}

impl ArithmeticProblem {
    /// The worked solution in the reasoning format the rewards train for.
    pub fn solution(&self) -> String {
        format!("<think>{}={}</think><answer>{}</answer>", self.question, self.answer, self.answer)
    }
}

/// Sums and differences of two operands below `max_operand`, drawn from `seed`. Disjoint
/// train/held-out sets come from different seeds; a few coincidences do not matter here.
pub fn arithmetic_problems(n: usize, max_operand: i64, seed: u64) -> Vec<ArithmeticProblem> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (a, b) = (rng.gen_range(0..max_operand), rng.gen_range(0..max_operand));
            if rng.gen_bool(0.5) {
                ArithmeticProblem { question: format!("{a}+{b}"), answer: a + b }
            } else {
                ArithmeticProblem { question: format!("{a}-{b}"), answer: a - b }
            }
        })
        .collect()
}

/// Special tokens of the character tokenizer, in id order from 0.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/// The reasoning tags are whole tokens (not special: decoding keeps them).
pub const TAG_TOKENS: [&str; 4] = ["<think>", "</think>", "<answer>", "</answer>"];
const CHARACTERS: &str = "0123456789+-*/=()., ?:\nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A minimal template (turn contents on their own lines, no role markers): a tiny model then
/// finds the question right before its answer, which keeps the embedded default fast to learn.
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{{ message['content'] + '\\n' }}{% endfor %}";

/// Number of ids the character tokenizer uses.
pub fn char_vocab_size() -> usize {
    SPECIAL_TOKENS.len() + TAG_TOKENS.len() + CHARACTERS.chars().count() + 1
}

/// Writes tokenizer.json, tokenizer_config.json and generation_config.json of a character-level
/// tokenizer into `dir` (an HF directory that transformers loads as it is).
pub fn write_char_tokenizer(dir: &Path) -> std::io::Result<()> {
    let added: Vec<(String, bool)> =
        SPECIAL_TOKENS.iter().map(|t| (t.to_string(), true)).chain(TAG_TOKENS.iter().map(|t| (t.to_string(), false))).collect();
    let mut vocab = serde_json::Map::new();
    for (id, (token, _)) in added.iter().enumerate() {
        vocab.insert(token.clone(), json!(id));
    }
    for c in CHARACTERS.chars() {
        vocab.insert(c.to_string(), json!(vocab.len()));
    }
    vocab.insert("<unk>".into(), json!(vocab.len()));
    let added_tokens: Vec<Value> = added
        .iter()
        .enumerate()
        .map(|(id, (content, special))| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": special})
        })
        .collect();
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "[\\s\\S]"}, "behavior": "Isolated", "invert": false},
        "post_processor": null,
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    let config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": null, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "unk_token": "<unk>", "chat_template": CHAT_TEMPLATE,
        "model_max_length": 512
    });
    let generation = json!({"eos_token_id": [2, 0], "pad_token_id": 0});
    for (name, value) in [("tokenizer.json", tokenizer), ("tokenizer_config.json", config), ("generation_config.json", generation)] {
        std::fs::write(dir.join(name), serde_json::to_string_pretty(&value)? + "\n")?;
    }
    Ok(())
}

/// A tiny Qwen2 (q/k/v bias, tied embeddings) sized for CPU training in seconds per step.
pub fn tiny_qwen2_config(vocab_size: usize) -> ModelConfig {
    let text = json!({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": vocab_size,
        "hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "max_position_embeddings": 512, "tie_word_embeddings": true
    });
    ModelConfig::from_hf_json(&text).expect("the embedded tiny configuration is valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Message;
    use crate::tokenizer::Tokenizer;

    #[test]
    fn problems_are_deterministic_and_correct() {
        let a = arithmetic_problems(50, 20, 7);
        assert_eq!(a, arithmetic_problems(50, 20, 7));
        assert_ne!(a, arithmetic_problems(50, 20, 8));
        for p in &a {
            let (x, op, y) = p
                .question
                .split_once('+')
                .map(|(x, y)| (x, '+', y))
                .or_else(|| p.question.split_once('-').map(|(x, y)| (x, '-', y)))
                .unwrap();
            let (x, y): (i64, i64) = (x.parse().unwrap(), y.parse().unwrap());
            assert_eq!(p.answer, if op == '+' { x + y } else { x - y }, "{}", p.question);
        }
        assert_eq!(ArithmeticProblem { question: "3-5".into(), answer: -2 }.solution(), "<think>3-5=-2</think><answer>-2</answer>");
    }

    #[test]
    fn char_tokenizer_round_trips_the_chat_format() {
        let dir = tempfile::tempdir().unwrap();
        write_char_tokenizer(dir.path()).unwrap();
        let tok = Tokenizer::from_hf_dir(dir.path()).unwrap();
        assert_eq!(tok.vocab_size(), char_vocab_size());
        let prompt = tok.chat_template().unwrap().render(&[Message::new("user", "12+7")], true).unwrap();
        assert_eq!(prompt, "12+7\n");
        let text = format!("{prompt}<think>12+7=19</think><answer>19</answer>");
        let ids = tok.encode(&text, false).unwrap();
        // Prompt: "12+7\n" (5); answer: 4 tags + "12+7=19" (7) + "19" (2) = 13.
        assert_eq!(ids.len(), 5 + 13);
        assert_eq!(ids[4], tok.token_to_id("\n").unwrap());
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        assert_eq!(tok.eos_token_ids(), &[2, 0]);
    }
}
