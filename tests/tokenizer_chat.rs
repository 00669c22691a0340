//! Tokenizer and chat template against HF transformers' outputs for the real GGUF checkpoints
//! (tests/fixtures/tokenizer_golden.json, written by scripts/make_tokenizer_fixtures.py).

mod common;

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use serde::Deserialize;
use srlm::chat::Message;
use srlm::tokenizer::{Tokenizer, TokenizerError};

const GOLDEN: &str = include_str!("fixtures/tokenizer_golden.json");

#[derive(Deserialize)]
struct Golden {
    models: Vec<ModelGolden>,
}

#[derive(Deserialize)]
struct ModelGolden {
    name: String,
    file: String,
    vocab_size: usize,
    bos_token: Option<String>,
    eos_token: Option<String>,
    pad_token: Option<String>,
    encodings: Vec<Encoding>,
    chats: Vec<Chat>,
}

#[derive(Deserialize)]
struct Encoding {
    text: String,
    ids: Vec<u32>,
    decoded: String,
}

#[derive(Deserialize)]
struct Chat {
    messages: Vec<Message>,
    add_generation_prompt: bool,
    text: String,
    ids: Vec<u32>,
}

fn golden(name: &str) -> ModelGolden {
    let golden: Golden = serde_json::from_str(GOLDEN).unwrap();
    golden.models.into_iter().find(|m| m.name == name).unwrap()
}

/// The checkpoint's path (see [`common::real_model`] for what happens when it is missing).
fn model_path(golden: &ModelGolden) -> Option<PathBuf> {
    common::real_model(&golden.file)
}

fn assert_matches_golden(tok: &Tokenizer, golden: &ModelGolden) {
    assert_eq!(tok.vocab_size(), golden.vocab_size);
    assert_eq!(tok.bos_token(), golden.bos_token.as_deref());
    assert_eq!(tok.eos_token(), golden.eos_token.as_deref());
    assert_eq!(tok.pad_token(), golden.pad_token.as_deref());
    for enc in &golden.encodings {
        assert_eq!(tok.encode(&enc.text, false).unwrap(), enc.ids, "encoding {:?}", enc.text);
        // Neither model adds BOS/EOS, so add_special_tokens changes nothing.
        assert_eq!(tok.encode(&enc.text, true).unwrap(), enc.ids, "encoding {:?}", enc.text);
        assert_eq!(tok.decode(&enc.ids, false).unwrap(), enc.decoded, "decoding {:?}", enc.ids);
    }
    let template = tok.chat_template().unwrap();
    for chat in &golden.chats {
        let text = template.render(&chat.messages, chat.add_generation_prompt).unwrap();
        assert_eq!(text, chat.text, "rendering {:?}", chat.messages);
        assert_eq!(tok.encode(&text, false).unwrap(), chat.ids, "encoding {text:?}");
    }
}

/// save_hf → from_hf_dir keeps ids, special tokens and template. With SRLM_TOKENIZER_SAVE_DIR set,
/// the copy is left there for `make_tokenizer_fixtures.py --check-saved` to load in transformers.
fn assert_hf_round_trip(tok: &Tokenizer, golden: &ModelGolden) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = match std::env::var_os("SRLM_TOKENIZER_SAVE_DIR") {
        Some(root) => PathBuf::from(root).join(&golden.name),
        None => tmp.path().to_path_buf(),
    };
    tok.save_hf(&dir).unwrap();
    let back = Tokenizer::from_hf_dir(&dir).unwrap();
    assert_matches_golden(&back, golden);
    assert_eq!(back.chat_template_source(), tok.chat_template_source());
    assert_eq!(back.eos_token_ids(), tok.eos_token_ids());
    assert_eq!(back.pad_token_id(), tok.pad_token_id());
}

#[test]
fn qwen2_matches_hf() {
    let golden = golden("qwen2.5-coder-0.5b-instruct");
    let Some(path) = model_path(&golden) else {
        return;
    };
    let tok = Tokenizer::from_gguf_file(&path).unwrap();
    assert_eq!(tok.encode("<|im_start|>hello<|im_end|>", false).unwrap(), [151644, 14990, 151645]);
    assert_eq!(tok.eos_token_ids(), &[151645]);
    assert_eq!(tok.pad_token_id(), Some(151643));
    assert_eq!(tok.decode(&[151644, 14990, 151645], true).unwrap(), "hello");
    // <tool_call> is user-defined, not special: matched whole but kept when skipping specials.
    assert_eq!(tok.encode("<tool_call>", false).unwrap(), [151657]);
    assert_eq!(tok.decode(&[151657, 151645], true).unwrap(), "<tool_call>");
    assert_matches_golden(&tok, &golden);
    assert_hf_round_trip(&tok, &golden);
}

#[test]
fn smollm2_matches_hf() {
    let golden = golden("smollm2-135m-instruct");
    let Some(path) = model_path(&golden) else {
        return;
    };
    let tok = Tokenizer::from_gguf_file(&path).unwrap();
    assert_eq!(tok.encode("<|im_start|>hello<|im_end|>", false).unwrap()[0], 1);
    assert_eq!(tok.eos_token_ids(), &[2]);
    assert_eq!(tok.bos_token_id(), Some(1));
    assert_matches_golden(&tok, &golden);
    assert_hf_round_trip(&tok, &golden);
}

#[test]
fn unsupported_pre_tokenizer_names_file_and_value() {
    let golden = golden("smollm2-135m-instruct");
    let Some(path) = model_path(&golden) else {
        return;
    };
    let mut file = std::fs::File::open(&path).unwrap();
    let mut content = gguf_file::Content::read(&mut file).unwrap();
    content.metadata.insert("tokenizer.ggml.pre".into(), gguf_file::Value::String("falcon".into()));
    let err = Tokenizer::from_gguf(&content, &path).unwrap_err();
    assert!(matches!(err, TokenizerError::Unsupported { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&golden.file) && msg.contains("'falcon'"), "{msg}");
}

#[test]
fn not_a_gguf_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.gguf");
    std::fs::write(&path, b"not a gguf").unwrap();
    let err = Tokenizer::from_gguf_file(&path).unwrap_err();
    assert!(matches!(err, TokenizerError::Gguf { .. }), "{err}");
    assert!(err.to_string().contains("broken.gguf"), "{err}");
    let missing = Tokenizer::from_gguf_file(Path::new("/nonexistent/m.gguf")).unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/m.gguf"), "{missing}");
}

#[test]
fn missing_and_malformed_hf_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");

    let golden = golden("smollm2-135m-instruct");
    let Some(path) = model_path(&golden) else {
        return;
    };
    Tokenizer::from_gguf_file(&path).unwrap().save_hf(dir.path()).unwrap();
    std::fs::write(dir.path().join("tokenizer_config.json"), "{ not json").unwrap();
    let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err();
    assert!(matches!(err, TokenizerError::Json { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
}
