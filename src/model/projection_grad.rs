//! The backward pass of a per-row loss on logits z = h Wᵀ, one chunk of rows at a time: what
//! `target_logprobs` and `logit_kl` share so that neither keeps a (rows × vocab) graph.

use candle_core::{Result, Tensor};

use super::matmul::matmul;

/// Whether a backward pass will run and all n × vocab values of `bytes_per_value` fit
/// `kept_bytes`: then the forward keeps them for it instead of the backward recomputing them.
pub(crate) fn worth_keeping(hidden: &Tensor, weight: &Tensor, bytes_per_value: usize, kept_bytes: usize) -> Result<bool> {
    let backward = hidden.track_op() || weight.track_op();
    Ok(backward && hidden.dim(0)? * weight.dim(0)? * bytes_per_value <= kept_bytes)
}

/// (start, rows) of each chunk of `n` rows, `chunk_rows` at a time (at least one).
pub(crate) fn row_chunks(n: usize, chunk_rows: usize) -> impl Iterator<Item = (usize, usize)> {
    let chunk_rows = chunk_rows.max(1);
    (0..n).step_by(chunk_rows).map(move |start| (start, chunk_rows.min(n - start)))
}

/// dh = dz W (n, d) and, when `weight` (vocab, d) is trainable, dW = Σ dzᵀ h, where
/// `dz(chunk, start, rows, h_chunk)` gives the logits gradient (rows, vocab) of each chunk in
/// `hidden`'s dtype.
pub(crate) fn project_back(
    hidden: &Tensor,
    weight: &Tensor,
    chunk_rows: usize,
    mut dz: impl FnMut(usize, usize, usize, &Tensor) -> Result<Tensor>,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let (h, w) = (hidden.detach(), weight.detach());
    // A frozen output projection (LoRA runs) needs no gradient: skip its vocab-sized product.
    let weight_grad_needed = weight.track_op();
    let mut dh_parts = Vec::new();
    let mut dw: Option<Tensor> = None;
    for (chunk, (start, rows)) in row_chunks(h.dim(0)?, chunk_rows).enumerate() {
        let hc = h.narrow(0, start, rows)?;
        let dz = dz(chunk, start, rows, &hc)?;
        dh_parts.push(matmul(&dz, &w)?);
        if weight_grad_needed {
            let part = matmul(&dz.t()?, &hc)?;
            dw = Some(match dw {
                Some(acc) => (acc + part)?,
                None => part,
            });
        }
    }
    let dh = if dh_parts.is_empty() { h.zeros_like()? } else { Tensor::cat(&dh_parts, 0)? };
    Ok((Some(dh), dw))
}
