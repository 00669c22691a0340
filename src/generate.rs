//! Group generation: G completions of one prompt, prefilled once, finished rows dropped from the batch.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::Qwen2;
use crate::sampling::{sample, SamplingParams, SequenceRng, StopStrings};
use crate::tokenizer::Tokenizer;

/// Turns completion ids into text; the tokenizer in practice, a stub vocabulary in tests.
pub trait TextDecoder {
    fn decode_text(&self, ids: &[u32]) -> std::result::Result<String, String>;
}

impl TextDecoder for Tokenizer {
    fn decode_text(&self, ids: &[u32]) -> std::result::Result<String, String> {
        self.decode(ids, true).map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct GenerationConfig {
    pub sampling: SamplingParams,
    pub max_new_tokens: usize,
    /// EOS ids are masked out until a completion has this many tokens (benchmarks force lengths).
    pub min_new_tokens: usize,
    /// Token ids that end a completion (kept as its last token).
    pub eos_ids: Vec<u32>,
    /// Strings that end a completion; the text is cut before them.
    pub stop: StopStrings,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence token was sampled.
    Eos,
    /// A stop string appeared in the text.
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub ids: Vec<u32>,
    pub text: String,
    pub finish_reason: FinishReason,
    /// Behaviour log-prob of each id: `log_softmax(logits / T)[id]`, as the learner computes it.
    pub logprobs: Vec<f32>,
}

/// One sequence being generated.
struct Row {
    ids: Vec<u32>,
    logprobs: Vec<f32>,
    rng: SequenceRng,
    /// Bytes of decoded text already searched for stop strings.
    checked: usize,
    done: Option<(FinishReason, String)>,
}

/// Samples `n` completions of `prompt`. Sequence `i` draws from the RNG stream `first_stream + i`,
/// so a group and the same sequences sampled one by one give the same tokens.
/// `on_token(i, id)` is called for every sampled token (for streaming).
pub fn generate_group(
    model: &Qwen2,
    tokenizer: &dyn TextDecoder,
    prompt: &[u32],
    n: usize,
    first_stream: u64,
    cfg: &GenerationConfig,
    mut on_token: impl FnMut(usize, u32),
) -> Result<Vec<Completion>> {
    if prompt.is_empty() {
        candle_core::bail!("cannot generate from an empty prompt");
    }
    let device = model.device();
    let mut cache = model.new_cache();
    let prompt_t = Tensor::new(prompt, device)?.unsqueeze(0)?;
    let first = model.decode(&prompt_t, &mut cache)?.to_vec2::<f32>()?.remove(0);
    let mut cache = cache.expand(n)?;
    let mut rows: Vec<Row> = (0..n)
        .map(|i| Row {
            ids: Vec::new(),
            logprobs: Vec::new(),
            rng: SequenceRng::new(cfg.seed, first_stream + i as u64),
            checked: 0,
            done: None,
        })
        .collect();
    // Indices of the rows still generating, in cache order.
    let mut active: Vec<usize> = (0..n).collect();
    let mut logits: Vec<Vec<f32>> = vec![first; n];
    while !active.is_empty() {
        for (slot, &i) in active.iter().enumerate() {
            if rows[i].ids.len() < cfg.min_new_tokens {
                for &eos in &cfg.eos_ids {
                    if let Some(l) = logits[slot].get_mut(eos as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            let picked = sample(&logits[slot], &cfg.sampling, &mut rows[i].rng);
            let row = &mut rows[i];
            row.ids.push(picked.token);
            row.logprobs.push(picked.logprob);
            on_token(i, picked.token);
            row.done = finish_check(row, tokenizer, cfg)?;
        }
        let still: Vec<(u32, usize)> = active
            .iter()
            .enumerate()
            .filter(|(_, &i)| rows[i].done.is_none())
            .map(|(slot, &i)| (slot as u32, i))
            .collect();
        if still.is_empty() {
            break;
        }
        if still.len() < active.len() {
            let keep: Vec<u32> = still.iter().map(|(slot, _)| *slot).collect();
            cache = cache.retain(&keep)?;
        }
        active = still.into_iter().map(|(_, i)| i).collect();
        let last: Vec<u32> = active.iter().map(|&i| *rows[i].ids.last().unwrap_or(&0)).collect();
        let input = Tensor::new(last.as_slice(), device)?.unsqueeze(1)?;
        logits = model.decode(&input, &mut cache)?.to_vec2::<f32>()?;
    }
    rows.into_iter()
        .map(|row| {
            let (finish_reason, text) = match row.done {
                Some(done) => done,
                None => (FinishReason::Length, decode(tokenizer, &row.ids)?),
            };
            Ok(Completion { ids: row.ids, text, finish_reason, logprobs: row.logprobs })
        })
        .collect()
}

/// Whether `row` has just finished, and its final text if so.
fn finish_check(row: &mut Row, tokenizer: &dyn TextDecoder, cfg: &GenerationConfig) -> Result<Option<(FinishReason, String)>> {
    let last = *row.ids.last().unwrap_or(&0);
    if cfg.eos_ids.contains(&last) {
        return Ok(Some((FinishReason::Eos, decode(tokenizer, &row.ids)?)));
    }
    if !cfg.stop.is_empty() {
        let text = decode(tokenizer, &row.ids)?;
        if let Some(m) = cfg.stop.find_from(&text, row.checked) {
            return Ok(Some((FinishReason::Stop, text[..m.start].to_string())));
        }
        // The tail may be an incomplete UTF-8 sequence that the next token rewrites.
        row.checked = text.trim_end_matches('\u{FFFD}').len();
    }
    if row.ids.len() >= cfg.max_new_tokens {
        return Ok(Some((FinishReason::Length, decode(tokenizer, &row.ids)?)));
    }
    Ok(None)
}

fn decode(tokenizer: &dyn TextDecoder, ids: &[u32]) -> Result<String> {
    tokenizer.decode_text(ids).map_err(candle_core::Error::Msg)
}
