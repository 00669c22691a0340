//! Generation: G completions of one prompt (prefilled once), or groups of several prompts in
//! flight together (`continuous`); finished rows are dropped from the batch either way. Tokens are drawn
//! on the host from a copy of the logits on the CPU, and beside the logits on a GPU
//! (`sampling::on_device`), so only ids and log-probs cross to the host there.

use candle_core::{DType, Device, Result, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::kv_cache::KvCache;
use crate::model::qwen2::Positions;
use crate::model::CausalLm;
use crate::sampling::{on_device, sample, Sampled, SamplingParams, SequenceRng, StopStrings};
use crate::tokenizer::Tokenizer;

pub mod continuous;
pub mod memory;
pub mod policy_sampler;

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

/// Where the next tokens are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerPlace {
    /// From a host copy of the logits, rows in parallel: the CPU path.
    Host,
    /// Beside the logits, with tensor ops: the GPU path (also runs on CPU tensors).
    Device,
}

impl SamplerPlace {
    /// `Host` for the CPU, where the logits already are; `Device` elsewhere.
    pub fn for_device(device: &Device) -> Self {
        if device.is_cpu() {
            Self::Host
        } else {
            Self::Device
        }
    }
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
    model: &dyn CausalLm,
    tokenizer: &dyn TextDecoder,
    prompt: &[u32],
    n: usize,
    first_stream: u64,
    cfg: &GenerationConfig,
    on_token: impl FnMut(usize, u32),
) -> Result<Vec<Completion>> {
    let place = SamplerPlace::for_device(model.device());
    generate_group_with(model, tokenizer, prompt, n, first_stream, cfg, place, on_token)
}

/// `generate_group` with the sampler's place chosen by the caller.
#[allow(clippy::too_many_arguments)]
pub fn generate_group_with(
    model: &dyn CausalLm,
    tokenizer: &dyn TextDecoder,
    prompt: &[u32],
    n: usize,
    first_stream: u64,
    cfg: &GenerationConfig,
    place: SamplerPlace,
    mut on_token: impl FnMut(usize, u32),
) -> Result<Vec<Completion>> {
    if prompt.is_empty() {
        candle_core::bail!("cannot generate from an empty prompt");
    }
    let device = model.device();
    let mut cache = model.new_cache();
    let prompt_t = Tensor::new(prompt, device)?.unsqueeze(0)?;
    let first = model.decode(&prompt_t, &mut cache)?.repeat((n, 1))?;
    let mut cache = cache.expand(n)?;
    let rows = new_rows((0..n as u64).map(|i| first_stream + i), cfg);
    let sampler = Drawer::new(place);
    decode_rows(rows, first, sampler, tokenizer, cfg, &mut on_token, |keep, last| {
        if let Some(keep) = keep {
            cache = cache.retain(keep)?;
        }
        let input = Tensor::new(last, device)?.unsqueeze(1)?;
        model.decode(&input, &mut cache)
    })
}

/// Generates one completion of each of several different prompts, all decoding together.
///
/// Each prompt is prefilled alone and joins the batch left-padded; each row gets its own
/// positions and a key mask hiding its padding, so a row's tokens are those it would get alone
/// (up to float rounding). Row `i` draws from the RNG stream `streams[i]`, so a prompt sampled
/// here or in a group with the same stream gets the same tokens. `on_token(i, id)` is called
/// for every sampled token of prompt `i`. (`continuous::generate_groups` with groups of one.)
pub fn generate_batch(
    model: &dyn CausalLm,
    tokenizer: &dyn TextDecoder,
    prompts: &[Vec<u32>],
    streams: &[u64],
    cfg: &GenerationConfig,
    mut on_token: impl FnMut(usize, u32),
) -> Result<Vec<Completion>> {
    let mut done: Vec<Option<Completion>> = vec![None; prompts.len()];
    continuous::generate_groups(
        model,
        tokenizer,
        prompts,
        streams,
        1,
        prompts.len().max(1),
        cfg,
        |i, mut c| {
            done[i] = c.pop();
            Ok(())
        },
        |i, _, id| on_token(i, id),
    )?;
    Ok(done.into_iter().map(|c| c.expect("every prompt's group is handed out")).collect())
}

/// The decode loop of a single group: sample every active row from its logits, drop the
/// finished ones, and get the next logits from `advance(kept cache slots if some row finished,
/// last token of each active row)`.
fn decode_rows(
    mut rows: Vec<Row>,
    mut logits: Tensor,
    mut sampler: Drawer,
    tokenizer: &dyn TextDecoder,
    cfg: &GenerationConfig,
    on_token: &mut impl FnMut(usize, u32),
    mut advance: impl FnMut(Option<&[u32]>, &[u32]) -> Result<Tensor>,
) -> Result<Vec<Completion>> {
    // Indices of the rows still generating, in cache order.
    let mut active: Vec<usize> = (0..rows.len()).collect();
    loop {
        let keep = sample_step(&mut rows, &mut active, &logits, &mut sampler, tokenizer, cfg, on_token)?;
        if active.is_empty() {
            break;
        }
        logits = advance(keep.as_deref(), &last_tokens(&rows, &active))?;
    }
    finish(rows, tokenizer)
}

/// Logits (b, vocab) at the last position of `ids`, appending to `cache`.
fn last_logits(model: &dyn CausalLm, ids: &Tensor, positions: &Tensor, mask: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
    let hidden = model.forward(ids, Positions::Explicit(positions), Some(mask), Some(cache))?;
    let t = hidden.dim(1)?;
    let last = hidden.narrow(1, t - 1, 1)?.squeeze(1)?;
    model.logits(&last)?.to_dtype(DType::F32)
}

/// (b, total) with 0 over each row's left padding and 1 over its real keys.
fn key_mask(pads: &[usize], total: usize, device: &Device) -> Result<Tensor> {
    let mask: Vec<f32> = pads.iter().flat_map(|&pad| (0..total).map(move |j| if j < pad { 0.0 } else { 1.0 })).collect();
    Tensor::from_vec(mask, (pads.len(), total), device)
}

fn new_rows(streams: impl Iterator<Item = u64>, cfg: &GenerationConfig) -> Vec<Row> {
    streams
        .map(|stream| Row { ids: Vec::new(), logprobs: Vec::new(), rng: SequenceRng::new(cfg.seed, stream), checked: 0, done: None })
        .collect()
}

/// Samples one token for every active row (logits row `slot` belongs to `active[slot]`), then
/// drops finished rows from `active`. Returns the cache slots to keep when some row finished.
fn sample_step(
    rows: &mut [Row],
    active: &mut Vec<usize>,
    logits: &Tensor,
    sampler: &mut Drawer,
    tokenizer: &dyn TextDecoder,
    cfg: &GenerationConfig,
    on_token: &mut impl FnMut(usize, u32),
) -> Result<Option<Vec<u32>>> {
    let picks = sampler.draw(rows, active, logits, cfg)?;
    for (&i, picked) in active.iter().zip(picks) {
        let row = &mut rows[i];
        row.ids.push(picked.token);
        row.logprobs.push(picked.logprob);
        on_token(i, picked.token);
        row.done = finish_check(row, tokenizer, cfg)?;
    }
    let still: Vec<(u32, usize)> =
        active.iter().enumerate().filter(|(_, &i)| rows[i].done.is_none()).map(|(slot, &i)| (slot as u32, i)).collect();
    let shrunk = still.len() < active.len();
    let keep: Vec<u32> = still.iter().map(|(slot, _)| *slot).collect();
    *active = still.into_iter().map(|(_, i)| i).collect();
    Ok((shrunk && !active.is_empty()).then_some(keep))
}

/// Draws the next token of each active row where `place` says, hiding end-of-sequence ids from
/// rows shorter than `min_new_tokens`.
struct Drawer {
    place: SamplerPlace,
    /// (1, vocab) u8, 1 at the end-of-sequence ids; built at the first step that needs it.
    eos_columns: Option<Tensor>,
}

impl Drawer {
    fn new(place: SamplerPlace) -> Self {
        Self { place, eos_columns: None }
    }

    fn draw(&mut self, rows: &mut [Row], active: &[usize], logits: &Tensor, cfg: &GenerationConfig) -> Result<Vec<Sampled>> {
        let short: Vec<bool> = active.iter().map(|&i| rows[i].ids.len() < cfg.min_new_tokens).collect();
        match self.place {
            SamplerPlace::Host => {
                let mut host = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
                for (row, _) in host.iter_mut().zip(&short).filter(|(_, &s)| s) {
                    for &eos in &cfg.eos_ids {
                        if let Some(l) = row.get_mut(eos as usize) {
                            *l = f32::NEG_INFINITY;
                        }
                    }
                }
                Ok(draw_on_host(rows, active, &host, &cfg.sampling))
            }
            SamplerPlace::Device => {
                let logits = self.hide_eos(logits, &short, &cfg.eos_ids)?;
                let mut is_active = vec![false; rows.len()];
                for &i in active {
                    is_active[i] = true;
                }
                // `active` is ascending, so this is slot order.
                let mut rngs: Vec<&mut SequenceRng> =
                    rows.iter_mut().zip(is_active).filter(|(_, a)| *a).map(|(row, _)| &mut row.rng).collect();
                on_device::sample_rows(&logits, &cfg.sampling, &mut rngs)
            }
        }
    }

    /// `logits` with -inf at the end-of-sequence ids of the `short` rows.
    fn hide_eos(&mut self, logits: &Tensor, short: &[bool], eos_ids: &[u32]) -> Result<Tensor> {
        if eos_ids.is_empty() || !short.contains(&true) {
            return Ok(logits.clone());
        }
        let (n, vocab) = logits.dims2()?;
        let device = logits.device();
        let columns = match &self.eos_columns {
            Some(c) => c.clone(),
            None => {
                let mut c = vec![0u8; vocab];
                for &e in eos_ids.iter().filter(|&&e| (e as usize) < vocab) {
                    c[e as usize] = 1;
                }
                let c = Tensor::from_vec(c, (1, vocab), device)?;
                self.eos_columns = Some(c.clone());
                c
            }
        };
        let rows = Tensor::from_vec(short.iter().map(|&s| u8::from(s)).collect::<Vec<_>>(), (n, 1), device)?;
        let hidden = rows.broadcast_mul(&columns)?;
        let minus_inf = Tensor::full(f32::NEG_INFINITY, (n, vocab), device)?.to_dtype(logits.dtype())?;
        hidden.where_cond(&minus_inf, logits)
    }
}

/// One token for each active row (`logits[slot]` belongs to `active[slot]`), rows in parallel:
/// each row draws from its own RNG stream, so the threads change nothing but the time.
fn draw_on_host(rows: &mut [Row], active: &[usize], logits: &[Vec<f32>], params: &SamplingParams) -> Vec<Sampled> {
    let mut slot_of = vec![None; rows.len()];
    for (slot, &i) in active.iter().enumerate() {
        slot_of[i] = Some(slot);
    }
    let mut jobs: Vec<(usize, &mut SequenceRng)> =
        rows.iter_mut().zip(slot_of).filter_map(|(row, slot)| slot.map(|slot| (slot, &mut row.rng))).collect();
    jobs.sort_unstable_by_key(|(slot, _)| *slot);
    jobs.into_par_iter().map(|(slot, rng)| sample(&logits[slot], params, rng)).collect()
}

fn last_tokens(rows: &[Row], active: &[usize]) -> Vec<u32> {
    active.iter().map(|&i| *rows[i].ids.last().unwrap_or(&0)).collect()
}

fn finish(rows: Vec<Row>, tokenizer: &dyn TextDecoder) -> Result<Vec<Completion>> {
    rows.into_iter().map(|mut row| completion(&mut row, tokenizer)).collect()
}

/// The row's completion, taken out of it.
fn completion(row: &mut Row, tokenizer: &dyn TextDecoder) -> Result<Completion> {
    let ids = std::mem::take(&mut row.ids);
    let (finish_reason, text) = match row.done.take() {
        Some(done) => done,
        None => (FinishReason::Length, decode(tokenizer, &ids)?),
    };
    Ok(Completion { ids, text, finish_reason, logprobs: std::mem::take(&mut row.logprobs) })
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
