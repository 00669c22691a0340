//! Per-token log-probabilities (and entropies) of target tokens: what the learner differentiates.
//!
//! The output projection runs in row chunks so a batch never materialises its full
//! (tokens × vocab) logits in one tensor.

use candle_core::{DType, Device, Result, Tensor, D};

use super::qwen2::Positions;
use super::target_logprobs::{chunked_logprobs, target_logprobs, TargetLogProbs};
use super::CausalLm;

/// Token sequences padded into one (b, t) batch.
pub struct TokenBatch {
    /// (b, t) u32.
    pub ids: Tensor,
    /// (b, t) f32: 1 for real tokens, 0 for padding.
    pub mask: Tensor,
    /// (b, t) u32 positions, set for left-padded batches.
    pub positions: Option<Tensor>,
    /// The predictions whose log-probs are needed, as flat indices into (b·(t − 1)); the others
    /// come back 0 without touching the output projection (prompt and padding rows, where
    /// the learner's losses are masked anyway). `None`: every prediction.
    pub scored: Option<Vec<u32>>,
}

impl TokenBatch {
    /// Right-padded with `pad`: positions start at 0 in every row.
    pub fn right_padded(seqs: &[Vec<u32>], pad: u32, device: &Device) -> Result<Self> {
        let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(seqs.len() * t);
        let mut mask = Vec::with_capacity(seqs.len() * t);
        for s in seqs {
            ids.extend(s.iter().copied().chain(std::iter::repeat_n(pad, t - s.len())));
            mask.extend((0..t).map(|i| if i < s.len() { 1f32 } else { 0.0 }));
        }
        let b = seqs.len();
        Ok(TokenBatch {
            ids: Tensor::from_vec(ids, (b, t), device)?,
            mask: Tensor::from_vec(mask, (b, t), device)?,
            positions: None,
            scored: None,
        })
    }

    /// Only the predictions where `mask` (b, t − 1) is non-zero will be scored.
    pub fn scoring_only(mut self, mask: &[f32]) -> Self {
        self.scored = Some((0..mask.len() as u32).filter(|&i| mask[i as usize] != 0.0).collect());
        self
    }
}

pub struct TokenLogProbs {
    /// (b, t - 1): log p(ids[:, i + 1] | ids[:, ..= i]) at the given temperature; 0 where the
    /// target or the token before it is padding.
    pub logprobs: Tensor,
    /// (b, t - 1) entropy of each next-token distribution, when asked for.
    pub entropies: Option<Tensor>,
}

/// Rows of the output projection computed at once; bounds the logits held in memory.
pub const DEFAULT_CHUNK_ROWS: usize = 512;

/// Final hidden states of the rows that predict a next token, (b·(t − 1), d), and which of
/// those predictions count, (b, t − 1) f32. Shared by every per-token objective.
pub fn prediction_states(model: &dyn CausalLm, batch: &TokenBatch) -> Result<(Tensor, Tensor)> {
    let (b, t) = batch.ids.dims2()?;
    if t < 2 {
        candle_core::bail!("per-token objectives need sequences of at least 2 tokens, got {t}");
    }
    let positions = match &batch.positions {
        Some(p) => Positions::Explicit(p),
        None => Positions::Offset(0),
    };
    let hidden = model.forward(&batch.ids, positions, Some(&batch.mask), None)?;
    let d = hidden.dim(D::Minus1)?;
    let hidden = hidden.narrow(1, 0, t - 1)?.reshape((b * (t - 1), d))?;
    // A prediction counts only when both the token it is made from and its target are real: in
    // a left-padded row the first token "predicted" from padding is meaningless.
    let mask = batch.mask.to_dtype(DType::F32)?;
    let target_mask = (mask.narrow(1, 0, t - 1)? * mask.narrow(1, 1, t - 1)?)?;
    Ok((hidden, target_mask))
}

/// The predictions `TokenBatch::scored` names, as an index into the b·(t − 1) rows.
pub(crate) struct ScoredRows {
    index: Option<Tensor>,
}

impl ScoredRows {
    pub(crate) fn of(batch: &TokenBatch, device: &Device) -> Result<Self> {
        let index = batch.scored.as_ref().map(|idx| Tensor::from_slice(idx, idx.len(), device)).transpose()?;
        Ok(ScoredRows { index })
    }

    /// The scored rows of `x` (b·(t − 1), …).
    pub(crate) fn pick(&self, x: &Tensor) -> Result<Tensor> {
        match &self.index {
            Some(idx) => x.index_select(idx, 0),
            None => Ok(x.clone()),
        }
    }

    /// Per-row values of the scored rows back at their places in (b, t − 1), times `pair_mask`
    /// (b, t − 1); 0 at the rows not scored.
    pub(crate) fn spread(&self, v: Tensor, pair_mask: &Tensor) -> Result<Tensor> {
        let v = match &self.index {
            Some(idx) => Tensor::zeros(pair_mask.elem_count(), v.dtype(), v.device())?.index_add(idx, &v, 0)?,
            None => v,
        };
        v.reshape(pair_mask.dims())?.mul(&pair_mask.to_dtype(v.dtype())?)
    }
}

/// Log-probs of each next token under `model`, logits divided by `temperature`.
///
/// When the output projection is a plain matrix, its backward recomputes logits chunk by chunk
/// (`target_logprobs`), so memory does not grow with rows × vocab; otherwise (a bias or a LoRA
/// branch on `lm_head`) autograd runs through each chunk's logits.
pub fn token_logprobs(
    model: &dyn CausalLm,
    batch: &TokenBatch,
    temperature: f64,
    with_entropy: bool,
    chunk_rows: usize,
) -> Result<TokenLogProbs> {
    let (b, t) = batch.ids.dims2()?;
    let (hidden, target_mask) = prediction_states(model, batch)?;
    let targets = batch.ids.narrow(1, 1, t - 1)?.reshape(b * (t - 1))?;
    let scored = ScoredRows::of(batch, hidden.device())?;
    let (hidden, targets) = (scored.pick(&hidden)?, scored.pick(&targets)?);
    let out = match model.output_weight() {
        Some(weight) => target_logprobs(&hidden, weight, &targets, temperature, with_entropy, chunk_rows)?,
        None => autograd_logprobs(model, &hidden, &targets, temperature, with_entropy, chunk_rows)?,
    };
    let finish = |v: Tensor| scored.spread(v, &target_mask);
    Ok(TokenLogProbs { logprobs: finish(out.logprobs)?, entropies: out.entropies.map(finish).transpose()? })
}

/// The same log-probs through candle's autograd over each chunk's logits.
fn autograd_logprobs(
    model: &dyn CausalLm,
    hidden: &Tensor,
    targets: &Tensor,
    temperature: f64,
    with_entropy: bool,
    chunk_rows: usize,
) -> Result<TargetLogProbs> {
    let targets = targets.reshape((hidden.dim(0)?, 1))?;
    let logits = |start: usize, rows: usize| model.logits(&hidden.narrow(0, start, rows)?);
    chunked_logprobs(&targets, temperature, with_entropy, chunk_rows, super::norm::widened(hidden.dtype()), logits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::init::init_weights;
    use crate::model::Qwen2;

    /// The recomputing path `token_logprobs` takes must give what autograd through the logits
    /// gives, values and gradients of every weight.
    #[test]
    fn the_recomputing_path_equals_autograd_through_the_logits() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = crate::synthetic::tiny_qwen2_config(40);
        let weights = init_weights(&cfg, 0.2, 7, &dev).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let (trainable, vars) = weights.to_vars().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let model = Qwen2::new(&cfg, &trainable).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let batch = TokenBatch::right_padded(&[vec![3, 9, 27, 1, 30], vec![5, 11, 2]], 0, &dev)?;
        let coeffs = Tensor::new(&[[0.5f32, -1.0, 2.0, 0.3], [1.5, -0.2, 0.0, 0.0]], &dev)?;

        let fused = token_logprobs(&model, &batch, 0.8, false, 3)?.logprobs;
        let (hidden, mask) = prediction_states(&model, &batch)?;
        let targets = batch.ids.narrow(1, 1, 4)?.reshape(8)?;
        let plain = (autograd_logprobs(&model, &hidden, &targets, 0.8, false, 3)?.logprobs.reshape((2, 4))? * &mask)?;
        let max_diff = |a: &Tensor, b: &Tensor| -> Result<f32> { (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar() };
        assert!(max_diff(&fused, &plain)? < 1e-5);

        let g_fused = (&fused * &coeffs)?.sum_all()?.backward()?;
        let g_plain = (&plain * &coeffs)?.sum_all()?.backward()?;
        for (name, var) in &vars {
            let (a, b) = (g_fused.get(var).expect(name), g_plain.get(var).expect(name));
            // f32 sums in a different order: relative to the gradient's own size.
            let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1e-3);
            assert!(max_diff(a, b)? < 1e-4 * scale, "{name}: gradients differ by {} (max {scale})", max_diff(a, b)?);
        }
        Ok(())
    }

    /// Scoring only some predictions gives exactly those log-probs (0 elsewhere), and the same
    /// gradients as scoring all of them when the loss uses only those.
    #[test]
    fn scoring_only_some_predictions_changes_nothing_the_loss_sees() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = crate::synthetic::tiny_qwen2_config(40);
        let weights = init_weights(&cfg, 0.2, 11, &dev).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let (trainable, vars) = weights.to_vars().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let model = Qwen2::new(&cfg, &trainable).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let seqs = [vec![3, 9, 27, 1, 30], vec![5, 11, 2]];
        let scored = [0f32, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0];
        let keep = Tensor::from_slice(&scored, (2, 4), &dev)?;
        let coeffs = Tensor::new(&[[0.5f32, -1.0, 2.0, 0.3], [1.5, -0.2, 0.7, 0.0]], &dev)?;
        for with_entropy in [false, true] {
            let all = token_logprobs(&model, &TokenBatch::right_padded(&seqs, 0, &dev)?, 0.9, with_entropy, 3)?;
            let some = token_logprobs(&model, &TokenBatch::right_padded(&seqs, 0, &dev)?.scoring_only(&scored), 0.9, with_entropy, 3)?;
            let max_diff = |a: &Tensor, b: &Tensor| -> Result<f32> { (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar() };
            let d = max_diff(&some.logprobs, &(&all.logprobs * &keep)?)?;
            assert!(
                d < 1e-5,
                "log-probs differ by {d}: {some:?} vs {all:?}",
                some = some.logprobs.to_vec2::<f32>()?,
                all = all.logprobs.to_vec2::<f32>()?
            );
            if with_entropy {
                let (a, b) = (some.entropies.as_ref().unwrap(), all.entropies.as_ref().unwrap());
                assert!(max_diff(a, &(b * &keep)?)? < 1e-6);
            }
            let g_some = (&some.logprobs * &coeffs)?.sum_all()?.backward()?;
            let g_all = ((&all.logprobs * &keep)? * &coeffs)?.sum_all()?.backward()?;
            for (name, var) in &vars {
                let (a, b) = (g_some.get(var).expect(name), g_all.get(var).expect(name));
                let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1e-3);
                assert!(max_diff(a, b)? < 1e-5 * scale, "{name}: gradients differ by {}", max_diff(a, b)?);
            }
        }
        Ok(())
    }
}
