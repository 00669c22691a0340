//! Tokenizer: text ⇄ token ids, plus the special tokens, stop ids and chat template a checkpoint
//! ships; built from an HF directory (`tokenizer.json` & co.) or from a GGUF's metadata.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use serde_json::{json, Value as Json};
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::normalizers::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::chat::{ChatError, ChatTemplate};

/// The split regex of Qwen2's `tokenizer.json` (one digit per piece, CJK runs kept whole).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const SUPPORTED_PRE: &str = "qwen2, smollm, starcoder, gpt-2";

// llama.cpp's `llama_token_type` values in `tokenizer.ggml.token_type`.
const TOKEN_CONTROL: i64 = 3;
const TOKEN_USER_DEFINED: i64 = 4;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{}: missing (an HF tokenizer directory needs tokenizer.json)", .path.display())]
    Missing { path: PathBuf },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: invalid JSON: {source}", .path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{}: cannot read GGUF metadata: {source}", .path.display())]
    Gguf { path: PathBuf, source: candle_core::Error },
    #[error("{}: {message}", .path.display())]
    Build { path: PathBuf, message: String },
    #[error("{}: '{key}' {problem}", .path.display())]
    Field { path: PathBuf, key: String, problem: String },
    #[error("{}: unsupported {what} '{value}' (supported: {supported})", .path.display())]
    Unsupported { path: PathBuf, what: &'static str, value: String, supported: &'static str },
    #[error("{}: no chat template", .path.display())]
    NoChatTemplate { path: PathBuf },
    #[error("{}: {source}", .path.display())]
    Chat { path: PathBuf, source: ChatError },
    #[error("encoding failed: {0}")]
    Encode(String),
    #[error("decoding failed: {0}")]
    Decode(String),
}

type Result<T> = std::result::Result<T, TokenizerError>;

/// An HF fast tokenizer plus what the checkpoint's config files say about it.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// The file or directory this came from; named in errors.
    origin: PathBuf,
    bos_token: Option<String>,
    eos_token: Option<String>,
    pad_token: Option<String>,
    unk_token: Option<String>,
    eos_token_ids: Vec<u32>,
    chat_template: Option<String>,
    add_bos_token: bool,
    add_eos_token: bool,
    model_max_length: Option<u64>,
}

impl Tokenizer {
    /// Loads `tokenizer.json` (required), `tokenizer_config.json`, `chat_template.jinja` and
    /// `generation_config.json` (optional) from an HF checkpoint directory.
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let text = read_required(&path)?;
        let inner =
            text.parse::<tokenizers::Tokenizer>().map_err(|e| TokenizerError::Build { path: path.clone(), message: e.to_string() })?;

        let config_path = dir.join("tokenizer_config.json");
        let config = read_json_object(&config_path)?.unwrap_or_default();
        let token = |key: &str| special_token(&config_path, &config, key);
        let flag = |key: &str| config.get(key).and_then(Json::as_bool).unwrap_or(false);
        let (bos_token, eos_token) = (token("bos_token")?, token("eos_token")?);
        let (pad_token, unk_token) = (token("pad_token")?, token("unk_token")?);
        let (add_bos_token, add_eos_token) = (flag("add_bos_token"), flag("add_eos_token"));
        let model_max_length = config.get("model_max_length").and_then(Json::as_u64);

        let jinja_path = dir.join("chat_template.jinja");
        let chat_template = match read_optional(&jinja_path)? {
            Some(template) => Some(template),
            None => config_chat_template(&config_path, config.get("chat_template"))?,
        };

        let gen_path = dir.join("generation_config.json");
        let eos_token_ids = match read_json_object(&gen_path)?.and_then(|g| g.get("eos_token_id").cloned()) {
            Some(value) => id_list(&gen_path, "eos_token_id", &value)?,
            None => eos_token.iter().filter_map(|t| inner.token_to_id(t)).collect(),
        };

        Ok(Self {
            inner,
            origin: dir.to_path_buf(),
            bos_token,
            eos_token,
            pad_token,
            unk_token,
            eos_token_ids,
            chat_template,
            add_bos_token,
            add_eos_token,
            model_max_length,
        })
    }

    /// Reads a GGUF file's header and builds its tokenizer; see [`Tokenizer::from_gguf`].
    pub fn from_gguf_file(path: &Path) -> Result<Self> {
        let mut file = std::fs::File::open(path).map_err(|source| TokenizerError::Io { path: path.to_path_buf(), source })?;
        let content = gguf_file::Content::read(&mut file).map_err(|source| TokenizerError::Gguf { path: path.to_path_buf(), source })?;
        Self::from_gguf(&content, path)
    }

    /// Rebuilds the HF fast tokenizer a GGUF's `tokenizer.ggml.*` metadata describes. Only
    /// byte-level BPE (`tokenizer.ggml.model = "gpt2"`) is supported, with the normalizer and
    /// pre-tokenizer of the model family's own `tokenizer.json` chosen by `tokenizer.ggml.pre`.
    pub fn from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Self> {
        let meta = GgufMeta { map: &content.metadata, path };
        let model = meta.string("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(meta.unsupported("tokenizer.ggml.model", model, "gpt2"));
        }
        let pre = meta.string("tokenizer.ggml.pre").unwrap_or("gpt-2");
        let (normalizer, pre_tokenizer) = byte_level_pre_tokenizer(pre)
            .map_err(|e| meta.build_error(e))?
            .ok_or_else(|| meta.unsupported("tokenizer.ggml.pre", pre, SUPPORTED_PRE))?;

        let tokens = meta.strings("tokenizer.ggml.tokens")?;
        let token_types = match meta.map.get("tokenizer.ggml.token_type") {
            Some(v) => meta.ints("tokenizer.ggml.token_type", v)?,
            None => vec![1; tokens.len()],
        };
        if token_types.len() != tokens.len() {
            let problem = format!("has {} entries for {} tokens", token_types.len(), tokens.len());
            return Err(meta.field("tokenizer.ggml.token_type", problem));
        }
        let merges: Merges = meta
            .strings("tokenizer.ggml.merges")?
            .iter()
            .map(|m| {
                let (a, b) =
                    m.split_once(' ').ok_or_else(|| meta.field("tokenizer.ggml.merges", format!("entry '{m}' is not 'left right'")))?;
                Ok((a.to_string(), b.to_string()))
            })
            .collect::<Result<_>>()?;
        let vocab: Vocab = tokens.iter().enumerate().map(|(id, t)| (t.to_string(), id as u32)).collect();
        let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| meta.build_error(e))?;

        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_normalizer(normalizer);
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevel::default()));
        // Control tokens (<|im_end|>) are special; user-defined ones (<tool_call>) are matched whole
        // in text but kept by `decode(skip_special_tokens)`, as HF's converter does.
        let added: Vec<AddedToken> = tokens
            .iter()
            .zip(&token_types)
            .filter(|(_, &ty)| ty == TOKEN_CONTROL || ty == TOKEN_USER_DEFINED)
            .map(|(t, &ty)| AddedToken::from(*t, ty == TOKEN_CONTROL).normalized(false))
            .collect();
        inner.add_tokens(&added);

        let token_at = |key: &str| -> Result<Option<String>> {
            match meta.u32(key)? {
                None => Ok(None),
                Some(id) => match tokens.get(id as usize) {
                    Some(t) => Ok(Some(t.to_string())),
                    None => Err(meta.field(key, format!("id {id} is outside the vocabulary"))),
                },
            }
        };
        let bos_token = token_at("tokenizer.ggml.bos_token_id")?;
        let eos_token = token_at("tokenizer.ggml.eos_token_id")?;
        let pad_token = token_at("tokenizer.ggml.padding_token_id")?;
        let unk_token = token_at("tokenizer.ggml.unknown_token_id")?;
        let add_bos_token = meta.bool("tokenizer.ggml.add_bos_token")?.unwrap_or(false);
        let add_eos_token = meta.bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);

        let mut eos_token_ids = Vec::new();
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
            if let Some(id) = meta.u32(key)? {
                if !eos_token_ids.contains(&id) {
                    eos_token_ids.push(id);
                }
            }
        }

        let mut tokenizer = Self {
            inner,
            origin: path.to_path_buf(),
            bos_token,
            eos_token,
            pad_token,
            unk_token,
            eos_token_ids,
            chat_template: meta.string("tokenizer.chat_template").ok().map(str::to_string),
            add_bos_token,
            add_eos_token,
            model_max_length: None,
        };
        tokenizer.set_post_processor()?;
        Ok(tokenizer)
    }

    /// Prepends BOS / appends EOS on `encode(.., add_special_tokens = true)` when the GGUF asks
    /// for it, the way HF's `tokenizer.json` post-processor does.
    fn set_post_processor(&mut self) -> Result<()> {
        let bos = self.bos_token.clone().filter(|_| self.add_bos_token);
        let eos = self.eos_token.clone().filter(|_| self.add_eos_token);
        if bos.is_none() && eos.is_none() {
            self.inner.with_post_processor(Some(ByteLevel::new(false, false, false)));
            return Ok(());
        }
        let mut specials = Vec::new();
        for token in bos.iter().chain(eos.iter()) {
            let id = self.token_to_id(token).ok_or_else(|| TokenizerError::Build {
                path: self.origin.clone(),
                message: format!("special token '{token}' is not in the vocabulary"),
            })?;
            specials.push((token.clone(), id));
        }
        let (b, e) = (bos.unwrap_or_default(), eos.unwrap_or_default());
        let single = format!("{b} $A:0 {e}");
        let pair = format!("{b} $A:0 {e} {b}:1 $B:1 {e}:1");
        let build = || -> std::result::Result<TemplateProcessing, String> {
            TemplateProcessing::builder()
                .try_single(single.as_str())?
                .try_pair(pair.as_str())?
                .special_tokens(specials)
                .build()
                .map_err(|e| e.to_string())
        };
        let template = build().map_err(|message| TokenizerError::Build { path: self.origin.clone(), message })?;
        self.inner.with_post_processor(Some(template));
        Ok(())
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` that HF's
    /// `AutoTokenizer.from_pretrained(dir)` loads to the same ids and chat template.
    pub fn save_hf(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| TokenizerError::Io { path: dir.to_path_buf(), source })?;
        let path = dir.join("tokenizer.json");
        self.inner.save(&path, false).map_err(|e| TokenizerError::Build { path: path.clone(), message: e.to_string() })?;

        let mut added: Vec<(u32, AddedToken)> = self.inner.get_added_tokens_decoder().into_iter().collect();
        added.sort_by_key(|(id, _)| *id);
        let added_tokens_decoder: serde_json::Map<String, Json> = added
            .into_iter()
            .map(|(id, t)| {
                let entry = json!({
                    "content": t.content, "lstrip": t.lstrip, "normalized": t.normalized,
                    "rstrip": t.rstrip, "single_word": t.single_word, "special": t.special,
                });
                (id.to_string(), entry)
            })
            .collect();
        let mut config = json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "pad_token": self.pad_token,
            "unk_token": self.unk_token,
            "add_bos_token": self.add_bos_token,
            "add_eos_token": self.add_eos_token,
            // HF's default would turn " ." into "." when decoding; the checkpoint never did.
            "clean_up_tokenization_spaces": false,
            "added_tokens_decoder": added_tokens_decoder,
        });
        if let Some(n) = self.model_max_length {
            config["model_max_length"] = json!(n);
        }
        if let Some(template) = &self.chat_template {
            config["chat_template"] = json!(template);
        }
        let path = dir.join("tokenizer_config.json");
        let text = serde_json::to_string_pretty(&config).map_err(|source| TokenizerError::Json { path: path.clone(), source })?;
        std::fs::write(&path, text).map_err(|source| TokenizerError::Io { path, source })
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_end|>`) become their ids, as
    /// in HF; `add_special_tokens` adds BOS/EOS only where the checkpoint asks for them.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let encoding = self.inner.encode_fast(text, add_special_tokens).map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner.decode(ids, skip_special_tokens).map_err(|e| TokenizerError::Decode(e.to_string()))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of distinct tokens, added ones included (HF's `len(tokenizer)`). The model's
    /// embedding may have more rows.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos_token.as_deref().and_then(|t| self.token_to_id(t))
    }

    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token.as_deref().and_then(|t| self.token_to_id(t))
    }

    pub fn pad_token(&self) -> Option<&str> {
        self.pad_token.as_deref()
    }

    pub fn pad_token_id(&self) -> Option<u32> {
        self.pad_token.as_deref().and_then(|t| self.token_to_id(t))
    }

    /// Ids that end generation: `generation_config.json`'s `eos_token_id` (an HF checkpoint) or
    /// the GGUF's eos/eot/eom ids; else the eos token.
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos_token_ids
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_token_ids.contains(&id)
    }

    /// The Jinja source of the checkpoint's chat template.
    pub fn chat_template_source(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The checkpoint's chat template, compiled, with this tokenizer's bos/eos tokens.
    pub fn chat_template(&self) -> Result<ChatTemplate> {
        let source = self.chat_template.as_deref().ok_or_else(|| TokenizerError::NoChatTemplate { path: self.origin.clone() })?;
        ChatTemplate::new(source, self.bos_token.clone(), self.eos_token.clone())
            .map_err(|source| TokenizerError::Chat { path: self.origin.clone(), source })
    }

    /// The wrapped `tokenizers` tokenizer, for batch encoding or offsets.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    pub fn origin(&self) -> &Path {
        &self.origin
    }
}

/// (normalizer, pre-tokenizer) of the HF `tokenizer.json` for llama.cpp's `tokenizer.ggml.pre`.
fn byte_level_pre_tokenizer(pre: &str) -> tokenizers::Result<Option<(Option<NFC>, PreTokenizerWrapper)>> {
    let gpt2 = ByteLevel::new(false, true, true);
    let pipeline = match pre {
        "qwen2" => {
            let split = Split::new(SplitPattern::Regex(QWEN2_SPLIT.to_string()), SplitDelimiterBehavior::Isolated, false)?;
            let steps = vec![split.into(), ByteLevel::new(false, false, false).into()];
            (Some(NFC), Sequence::new(steps).into())
        }
        "smollm" | "starcoder" => (None, Sequence::new(vec![Digits::new(true).into(), gpt2.into()]).into()),
        "gpt-2" => (None, gpt2.into()),
        _ => return Ok(None),
    };
    Ok(Some(pipeline))
}

/// Typed reads of GGUF metadata whose errors name the file and key.
struct GgufMeta<'a> {
    map: &'a HashMap<String, gguf_file::Value>,
    path: &'a Path,
}

impl GgufMeta<'_> {
    fn field(&self, key: &str, problem: impl Into<String>) -> TokenizerError {
        TokenizerError::Field { path: self.path.to_path_buf(), key: key.to_string(), problem: problem.into() }
    }

    fn unsupported(&self, what: &'static str, value: &str, supported: &'static str) -> TokenizerError {
        TokenizerError::Unsupported { path: self.path.to_path_buf(), what, value: value.to_string(), supported }
    }

    fn build_error(&self, e: impl std::fmt::Display) -> TokenizerError {
        TokenizerError::Build { path: self.path.to_path_buf(), message: e.to_string() }
    }

    fn get(&self, key: &str) -> Result<&gguf_file::Value> {
        self.map.get(key).ok_or_else(|| self.field(key, "is missing"))
    }

    fn string(&self, key: &str) -> Result<&str> {
        self.get(key)?.to_string().map(String::as_str).map_err(|e| self.field(key, e.to_string()))
    }

    fn strings(&self, key: &str) -> Result<Vec<&str>> {
        let items = self.get(key)?.to_vec().map_err(|e| self.field(key, e.to_string()))?;
        items.iter().map(|v| v.to_string().map(String::as_str).map_err(|e| self.field(key, e.to_string()))).collect()
    }

    fn ints(&self, key: &str, value: &gguf_file::Value) -> Result<Vec<i64>> {
        let items = value.to_vec().map_err(|e| self.field(key, e.to_string()))?;
        items.iter().map(|v| integer(v).ok_or_else(|| self.field(key, "holds a non-integer"))).collect()
    }

    fn u32(&self, key: &str) -> Result<Option<u32>> {
        let Some(value) = self.map.get(key) else {
            return Ok(None);
        };
        match integer(value).and_then(|i| u32::try_from(i).ok()) {
            Some(id) => Ok(Some(id)),
            None => Err(self.field(key, format!("is not a token id: {value:?}"))),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        let Some(value) = self.map.get(key) else {
            return Ok(None);
        };
        value.to_bool().map(Some).map_err(|e| self.field(key, e.to_string()))
    }
}

fn integer(value: &gguf_file::Value) -> Option<i64> {
    use gguf_file::Value as V;
    match *value {
        V::U8(v) => Some(v.into()),
        V::I8(v) => Some(v.into()),
        V::U16(v) => Some(v.into()),
        V::I16(v) => Some(v.into()),
        V::U32(v) => Some(v.into()),
        V::I32(v) => Some(v.into()),
        V::U64(v) => i64::try_from(v).ok(),
        V::I64(v) => Some(v),
        _ => None,
    }
}

fn read_required(path: &Path) -> Result<String> {
    read_optional(path)?.ok_or_else(|| TokenizerError::Missing { path: path.to_path_buf() })
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TokenizerError::Io { path: path.to_path_buf(), source }),
    }
}

fn read_json_object(path: &Path) -> Result<Option<serde_json::Map<String, Json>>> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    match serde_json::from_str(&text) {
        Ok(Json::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(TokenizerError::Field { path: path.to_path_buf(), key: "<root>".into(), problem: "is not a JSON object".into() }),
        Err(source) => Err(TokenizerError::Json { path: path.to_path_buf(), source }),
    }
}

/// `bos_token` & co. in `tokenizer_config.json`: a string, an `{"content": ..}` object, or null.
fn special_token(path: &Path, config: &serde_json::Map<String, Json>, key: &str) -> Result<Option<String>> {
    match config.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(Json::Object(o)) => match o.get("content") {
            Some(Json::String(s)) => Ok(Some(s.clone())),
            _ => Err(field_error(path, key, "is an object without a string 'content'")),
        },
        Some(_) => Err(field_error(path, key, "must be a string, an object with 'content', or null")),
    }
}

/// `chat_template` in `tokenizer_config.json`: a string, or a list of `{name, template}` from
/// which the one named "default" (else the first) is taken.
fn config_chat_template(path: &Path, value: Option<&Json>) -> Result<Option<String>> {
    let key = "chat_template";
    let list = match value {
        None | Some(Json::Null) => return Ok(None),
        Some(Json::String(s)) => return Ok(Some(s.clone())),
        Some(Json::Array(list)) => list,
        Some(_) => return Err(field_error(path, key, "must be a string or a list of {name, template}")),
    };
    let named = |name: &str| list.iter().find(|t| t.get("name").and_then(Json::as_str) == Some(name));
    match named("default").or_else(|| list.first()) {
        None => Ok(None),
        Some(entry) => match entry.get("template") {
            Some(Json::String(s)) => Ok(Some(s.clone())),
            _ => Err(field_error(path, key, "has an entry without a string 'template'")),
        },
    }
}

/// `eos_token_id` in `generation_config.json`: one id or a list of ids.
fn id_list(path: &Path, key: &str, value: &Json) -> Result<Vec<u32>> {
    crate::id_list::parse(value).map_err(|problem| field_error(path, key, &problem))
}

fn field_error(path: &Path, key: &str, problem: &str) -> TokenizerError {
    TokenizerError::Field { path: path.to_path_buf(), key: key.to_string(), problem: problem.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level BPE over "a", "b", "ab" with `<|end|>` as a special token.
    fn tiny_tokenizer_json() -> Json {
        json!({
            "version": "1.0",
            "added_tokens": [{"id": 3, "content": "<|end|>", "single_word": false, "lstrip": false,
                              "rstrip": false, "normalized": false, "special": true}],
            "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<|end|>": 3}, "merges": [["a", "b"]]}
        })
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn tiny_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "tokenizer.json", &tiny_tokenizer_json().to_string());
        dir
    }

    #[test]
    fn missing_tokenizer_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err();
        assert!(matches!(err, TokenizerError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("tokenizer.json"), "{err}");
    }

    #[test]
    fn malformed_config_names_the_file() {
        let dir = tiny_dir();
        write(dir.path(), "tokenizer_config.json", "{\"bos_token\": ");
        let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err();
        assert!(matches!(err, TokenizerError::Json { .. }), "{err}");
        assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
    }

    #[test]
    fn bad_field_names_file_and_key() {
        let dir = tiny_dir();
        write(dir.path(), "tokenizer_config.json", r#"{"eos_token": 7}"#);
        let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("tokenizer_config.json") && err.contains("eos_token"), "{err}");
        write(dir.path(), "tokenizer_config.json", "{}");
        write(dir.path(), "generation_config.json", r#"{"eos_token_id": "x"}"#);
        let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("generation_config.json") && err.contains("eos_token_id"), "{err}");
    }

    #[test]
    fn broken_tokenizer_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "tokenizer.json", r#"{"model": 3}"#);
        let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
    }

    #[test]
    fn reads_config_in_all_its_shapes() {
        let dir = tiny_dir();
        let config = json!({
            "bos_token": {"content": "a", "lstrip": false},
            "eos_token": "<|end|>",
            "pad_token": null,
            "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
        });
        write(dir.path(), "tokenizer_config.json", &config.to_string());
        let tok = Tokenizer::from_hf_dir(dir.path()).unwrap();
        assert_eq!(tok.bos_token(), Some("a"));
        assert_eq!(tok.bos_token_id(), Some(0));
        assert_eq!(tok.eos_token_id(), Some(3));
        assert_eq!(tok.pad_token(), None);
        assert_eq!(tok.eos_token_ids(), &[3]);
        assert_eq!(tok.chat_template_source(), Some("D"));

        write(dir.path(), "chat_template.jinja", "J");
        write(dir.path(), "generation_config.json", r#"{"eos_token_id": [3, 2]}"#);
        let tok = Tokenizer::from_hf_dir(dir.path()).unwrap();
        assert_eq!(tok.chat_template_source(), Some("J"));
        assert_eq!(tok.eos_token_ids(), &[3, 2]);
        assert!(tok.is_eos(2));
    }

    #[test]
    fn encodes_special_tokens_in_text_and_round_trips() {
        let dir = tiny_dir();
        let tok = Tokenizer::from_hf_dir(dir.path()).unwrap();
        let ids = tok.encode("ab<|end|>ba", false).unwrap();
        assert_eq!(ids, vec![2, 3, 1, 0]);
        assert_eq!(tok.decode(&ids, false).unwrap(), "ab<|end|>ba");
        assert_eq!(tok.decode(&ids, true).unwrap(), "abba");
        assert_eq!(tok.vocab_size(), 4);
    }

    #[test]
    fn no_chat_template_is_an_error() {
        let dir = tiny_dir();
        let tok = Tokenizer::from_hf_dir(dir.path()).unwrap();
        let err = tok.chat_template().unwrap_err();
        assert!(matches!(err, TokenizerError::NoChatTemplate { .. }), "{err}");
    }

    #[test]
    fn unsupported_gguf_tokenizer_is_named() {
        let mut metadata = HashMap::new();
        metadata.insert("tokenizer.ggml.model".to_string(), gguf_file::Value::String("llama".into()));
        let content =
            gguf_file::Content { magic: gguf_file::VersionedMagic::GgufV3, metadata, tensor_infos: HashMap::new(), tensor_data_offset: 0 };
        let err = Tokenizer::from_gguf(&content, Path::new("m.gguf")).unwrap_err().to_string();
        assert!(err.contains("m.gguf") && err.contains("'llama'"), "{err}");
    }
}
