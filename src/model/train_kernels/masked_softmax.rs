//! Attention probabilities softmax(scale · scores + bias) over the last dim, one node with its
//! backward (candle's `softmax_last_dim` has none; its unfused softmax is ~8 nodes).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

use super::cpu::{for_rows, slice, tensor, with_slice, Real};

/// scores (b, …, T) whose rows cycle through `t` query positions; `bias` (b or 1, 1, 1, t, T)
/// additive (0 or a large negative), shared by the rows of one query position.
pub(crate) fn masked_softmax(scores: &Tensor, bias: Option<&Tensor>, t: usize, scale: f64) -> Result<Tensor> {
    let keys = scores.dim(candle_core::D::Minus1)?;
    let bias = match bias {
        Some(bias) => {
            let bias = bias.contiguous()?;
            let per_batch = bias.dim(0)?;
            if bias.elem_count() != per_batch * t * keys || (per_batch != 1 && per_batch != scores.dim(0)?) {
                candle_core::bail!("masked softmax: bias {:?} does not fit scores {:?}", bias.dims(), scores.dims());
            }
            Some(bias)
        }
        None => None,
    };
    scores.contiguous()?.apply_op1(MaskedSoftmax { bias, t, scale })
}

struct MaskedSoftmax {
    bias: Option<Tensor>,
    t: usize,
    scale: f64,
}

fn forward<T: Real>(s: &[T], bias: Option<&[T]>, batch: usize, t: usize, keys: usize, scale: f64) -> Vec<T> {
    let scale = T::from(scale).unwrap_or_else(T::one);
    let rows_per_batch = s.len() / keys / batch.max(1);
    let mut p = vec![T::zero(); s.len()];
    for_rows(&mut p, keys, |r, out| {
        let row = &s[r * keys..(r + 1) * keys];
        for (o, &v) in out.iter_mut().zip(row) {
            *o = v * scale;
        }
        if let Some(bias) = bias {
            let bi = if bias.len() == t * keys { 0 } else { r / rows_per_batch };
            let at = (bi * t + (r % rows_per_batch) % t) * keys;
            for (o, &v) in out.iter_mut().zip(&bias[at..at + keys]) {
                *o += v;
            }
        }
        let max = out.iter().fold(T::neg_infinity(), |m, &v| num_traits::Float::max(m, v));
        for o in out.iter_mut() {
            *o = (*o - max).fast_exp();
        }
        let inv_sum = T::one() / out.iter().fold(T::zero(), |acc, &v| acc + v);
        for o in out.iter_mut() {
            *o *= inv_sum;
        }
    });
    p
}

/// d scores = scale · p ∘ (g − ⟨g, p⟩) per row.
fn backward<T: Real>(p: &[T], g: &[T], keys: usize, scale: f64) -> Vec<T> {
    let scale = T::from(scale).unwrap_or_else(T::one);
    let mut ds = vec![T::zero(); p.len()];
    for_rows(&mut ds, keys, |r, out| {
        let (prow, grow) = (&p[r * keys..(r + 1) * keys], &g[r * keys..(r + 1) * keys]);
        let dot = prow.iter().zip(grow).fold(T::zero(), |acc, (&a, &b)| acc + a * b);
        for ((o, &pi), &gi) in out.iter_mut().zip(prow).zip(grow) {
            *o = scale * pi * (gi - dot);
        }
    });
    ds
}

impl MaskedSoftmax {
    fn run<T: Real>(&self, s: &[T], l: &Layout) -> Result<Vec<T>> {
        let dims = l.shape().dims();
        let (batch, keys) = (dims[0], dims[dims.len() - 1]);
        match &self.bias {
            None => Ok(forward(s, None, batch, self.t, keys, self.scale)),
            Some(bias) => with_slice::<T, _>(bias, |b| Ok(forward(s, Some(b), batch, self.t, keys, self.scale))),
        }
    }
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        if l.shape().rank() < 2 {
            candle_core::bail!("masked softmax: scores need a batch and a key dim, got {:?}", l.shape());
        }
        let storage = match s.dtype() {
            DType::F32 => CpuStorage::F32(self.run::<f32>(slice(s, l)?, l)?),
            DType::F64 => CpuStorage::F64(self.run::<f64>(slice(s, l)?, l)?),
            other => candle_core::bail!("masked softmax: unsupported dtype {other:?}"),
        };
        Ok((storage, l.shape().clone()))
    }

    fn bwd(&self, scores: &Tensor, probs: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let keys = scores.dim(candle_core::D::Minus1)?;
        let ds = match scores.dtype() {
            DType::F32 => {
                tensor(with_slice::<f32, _>(probs, |p| with_slice(grad, |g| Ok(backward(p, g, keys, self.scale))))?, scores.shape())?
            }
            _ => tensor(with_slice::<f64, _>(probs, |p| with_slice(grad, |g| Ok(backward(p, g, keys, self.scale))))?, scores.shape())?,
        };
        Ok(Some(ds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::train_kernels::test_support::{assert_same_values_and_grads, random};
    use candle_core::D;

    /// The unfused graph the model used: scale, add the broadcast bias, softmax.
    fn reference(s: &Tensor, bias: Option<&Tensor>, t: usize, scale: f64) -> Result<Tensor> {
        let (b, kvh, rows, keys) = s.dims4()?;
        let scaled = (s * scale)?;
        let biased = match bias {
            Some(bias) => scaled.reshape((b, kvh, rows / t, t, keys))?.broadcast_add(bias)?.reshape((b, kvh, rows, keys))?,
            None => scaled,
        };
        candle_nn::ops::softmax(&biased, D::Minus1)
    }

    /// A causal bias with the first `pad[i]` keys of row i masked too, (b, 1, 1, t, T).
    fn bias(b: usize, t: usize, keys: usize, pad: &[usize], dtype: DType) -> Result<Tensor> {
        let past = keys - t;
        let v: Vec<f64> = (0..b)
            .flat_map(|bi| {
                let p = pad[bi.min(pad.len() - 1)];
                (0..t).flat_map(move |i| (0..keys).map(move |j| if j <= past + i && j >= p { 0.0 } else { -1e9 }))
            })
            .collect();
        Tensor::from_vec(v, (b, 1, 1, t, keys), &candle_core::Device::Cpu)?.to_dtype(dtype)
    }

    #[test]
    fn value_and_gradient_equal_the_unfused_graph() -> Result<()> {
        // b = 2, 2 KV heads × 3 query heads each, t = 4 queries over 6 keys (2 cached).
        let (b, t, keys) = (2, 4, 6);
        for dtype in [DType::F64, DType::F32] {
            let s = (random(&[b, 2, 3 * t, keys], dtype, 10)? * 3.0)?;
            for bias in [None, Some(bias(1, t, keys, &[0], dtype)?), Some(bias(b, t, keys, &[0, 2], dtype)?)] {
                assert_same_values_and_grads(
                    std::slice::from_ref(&s),
                    |v| masked_softmax(&v[0], bias.as_ref(), t, 0.125),
                    |v| reference(&v[0], bias.as_ref(), t, 0.125),
                )?;
            }
        }
        Ok(())
    }
}
