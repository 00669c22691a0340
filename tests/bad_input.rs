//! Bad checkpoints give a clear error naming the file and the problem, never a panic.

mod common;

use std::path::Path;
use std::process::Command;

use common::fixtures;

/// Runs `srlm inspect --model DIR` and returns its stderr; asserts a clean failure.
fn inspect_error(model: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_srlm")).args(["inspect", "--model"]).arg(model).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected exit 1, stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    stderr
}

/// A writable copy of the tiny Qwen2 fixture.
fn tiny_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures().join("tiny/qwen2").join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn missing_file() {
    let err = inspect_error(Path::new("/nonexistent/model.gguf"));
    assert!(err.contains("/nonexistent/model.gguf") && err.contains("no such file"), "{err}");
}

#[test]
fn truncated_safetensors() {
    let dir = tiny_copy();
    let weights = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = inspect_error(dir.path());
    assert!(err.contains(&weights.display().to_string()) && err.contains("not a readable safetensors"), "{err}");
}

#[test]
fn unknown_architecture() {
    let dir = tiny_copy();
    edit_config(dir.path(), |v| v["model_type"] = "gpt_neox".into());
    let err = inspect_error(dir.path());
    assert!(err.contains("config.json") && err.contains("unsupported architecture 'gpt_neox'"), "{err}");
}

#[test]
fn wrong_tensor_shape() {
    let dir = tiny_copy();
    edit_config(dir.path(), |v| v["intermediate_size"] = 48.into());
    let err = inspect_error(dir.path());
    assert!(err.contains("model.safetensors") && err.contains("mlp.gate_proj.weight") && err.contains("[48, 32]"), "{err}");
}

#[test]
fn malformed_config() {
    let dir = tiny_copy();
    std::fs::write(dir.path().join("config.json"), "{\"model_type\": \"qwen2\", ").unwrap();
    let err = inspect_error(dir.path());
    assert!(err.contains("config.json") && err.contains("not valid JSON"), "{err}");
}

#[test]
fn not_a_gguf_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, b"definitely not gguf").unwrap();
    let err = inspect_error(&path);
    assert!(err.contains("model.gguf") && err.contains("not a readable GGUF"), "{err}");
}

#[test]
fn missing_tokenizer() {
    // The tiny fixture has weights but no tokenizer.json: the model loads, the tokenizer is named.
    let err = inspect_error(&fixtures().join("tiny/qwen2"));
    assert!(err.contains("tokenizer.json"), "{err}");
}
