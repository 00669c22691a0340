//! Attention of one new token per row over the KV cache, as one CPU kernel (decoding only).
//!
//! candle runs a decode step's attention as scale, two batched matmuls of b·kvh tiny products
//! each, softmax and a copy of V out of the cache: five ops and about a hundred gemm calls per
//! layer. Here each (row, KV head) reads its keys and values once, in place, for all the query
//! heads that share them. A row's left padding (rows of different lengths decoding together) is
//! skipped by starting that row's keys later, instead of masking them with a bias.

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Whether [`decode_attention`] takes these operands: f32 on the CPU.
pub fn supports(q: &Tensor) -> bool {
    matches!(q.device(), Device::Cpu) && q.dtype() == DType::F32
}

/// softmax(q·Kᵀ / √hd)·V for q (b, h, 1, hd) and k, v (b, kvh, T, hd) with rows of hd contiguous
/// (the cache's narrowed buffers); query head i reads KV head i / (h / kvh). Row r attends to
/// keys `starts[r]..T` (all keys when `starts` is empty). → (b, 1, h·hd).
pub fn decode_attention(q: &Tensor, k: &Tensor, v: &Tensor, starts: &[usize]) -> Result<Tensor> {
    q.contiguous()?.apply_op3_no_bwd(k, v, &DecodeAttention { starts: starts.to_vec() })
}

struct DecodeAttention {
    starts: Vec<usize>,
}

/// Where the (b, kvh) blocks of T rows of a key or value tensor start, and the row stride.
struct Rows<'a> {
    data: &'a [f32],
    offset: usize,
    stride: [usize; 3],
}

impl<'a> Rows<'a> {
    fn of(storage: &'a CpuStorage, layout: &Layout, hd: usize) -> Result<Self> {
        let s = layout.stride();
        if s.len() != 4 || (s[3] != 1 && hd > 1) {
            candle_core::bail!("decode attention: keys/values need rows of head_dim contiguous, strides {s:?}");
        }
        Ok(Rows { data: storage.as_slice::<f32>()?, offset: layout.start_offset(), stride: [s[0], s[1], s[2]] })
    }

    fn row(&self, b: usize, g: usize, j: usize, hd: usize) -> &'a [f32] {
        let at = self.offset + b * self.stride[0] + g * self.stride[1] + j * self.stride[2];
        &self.data[at..at + hd]
    }
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "decode-attention"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, h, t, hd) = lq.shape().dims4()?;
        let (kb, kvh, total, khd) = lk.shape().dims4()?;
        if t != 1 || kb != b || khd != hd || lv.dims() != lk.dims() || kvh == 0 || h % kvh != 0 {
            candle_core::bail!("decode attention: q {:?}, k {:?}, v {:?}", lq.dims(), lk.dims(), lv.dims());
        }
        if !(self.starts.is_empty() || self.starts.len() == b && self.starts.iter().all(|&s| s < total)) {
            candle_core::bail!("decode attention: key starts {:?} for {b} rows of {total} keys", self.starts);
        }
        let Some((q0, q1)) = lq.contiguous_offsets() else { candle_core::bail!("decode attention: q is not contiguous") };
        let q = &sq.as_slice::<f32>()?[q0..q1];
        let (keys, values) = (Rows::of(sk, lk, hd)?, Rows::of(sv, lv, hd)?);
        let rep = h / kvh;
        let scale = 1.0 / (hd as f32).sqrt();
        // One (row, KV head) per task: its `rep` query heads are adjacent in q and in the output.
        let mut out = vec![0f32; b * h * hd];
        out.par_chunks_mut(rep * hd).enumerate().for_each_init(
            || vec![0f32; rep * total],
            |scores, (task, out)| {
                let (bi, g) = (task / kvh, task % kvh);
                let first = self.starts.get(bi).copied().unwrap_or(0);
                let q = &q[(bi * h + g * rep) * hd..][..rep * hd];
                let group = Group { q, keys: &keys, values: &values, b: bi, g, hd, first, total, scale };
                group.attend(scores, out);
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((b, 1, h * hd))))
    }
}

/// The query heads of one row that share KV head `g`.
struct Group<'a> {
    /// (rep, hd)
    q: &'a [f32],
    keys: &'a Rows<'a>,
    values: &'a Rows<'a>,
    b: usize,
    g: usize,
    hd: usize,
    /// Keys `first..total` are attended to.
    first: usize,
    total: usize,
    scale: f32,
}

impl Group<'_> {
    /// Writes the heads' outputs (rep, hd) into `out`, using `scores` (rep, total) as scratch.
    fn attend(&self, scores: &mut [f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { self.attend_avx2(scores, out) };
        }
        self.attend_with::<false>(scores, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn attend_avx2(&self, scores: &mut [f32], out: &mut [f32]) {
        self.attend_with::<true>(scores, out)
    }

    /// Each key and value row is read once for all the heads of the group.
    #[inline(always)]
    fn attend_with<const FMA: bool>(&self, scores: &mut [f32], out: &mut [f32]) {
        let (hd, first) = (self.hd, self.first);
        // Scores of keys first..total, `total` of them per head.
        let total = self.total - first;
        let scores = &mut scores[..self.q.len() / hd * total];
        for j in 0..total {
            let k = self.keys.row(self.b, self.g, first + j, hd);
            for (r, qh) in self.q.chunks_exact(hd).enumerate() {
                scores[r * total + j] = dot::<FMA>(qh, k) * self.scale;
            }
        }
        for row in scores.chunks_exact_mut(total) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for s in row.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            for s in row.iter_mut() {
                *s /= sum;
            }
        }
        for j in 0..total {
            let v = self.values.row(self.b, self.g, first + j, hd);
            for (r, o) in out.chunks_exact_mut(hd).enumerate() {
                axpy::<FMA>(scores[r * total + j], v, o);
            }
        }
    }
}

#[inline(always)]
fn fma<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Eight independent partial sums, so they stay in one vector register.
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for ((l, &x), &y) in lanes.iter_mut().zip(ca).zip(cb) {
            *l = fma::<FMA>(x, y, *l);
        }
    }
    let tail: f32 = a.chunks_exact(8).remainder().iter().zip(b.chunks_exact(8).remainder()).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

#[inline(always)]
fn axpy<const FMA: bool>(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = fma::<FMA>(a, x, *y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the unfused computation, on a cache buffer narrowed to fewer positions than it
    /// holds (as decoding reads it) and with grouped query heads.
    #[test]
    fn equals_softmax_of_scaled_products() {
        let dev = Device::Cpu;
        let (b, h, kvh, cap, total, hd) = (3, 6, 2, 16, 11, 20);
        let q = Tensor::randn(0f32, 1.0, (b, h, 1, hd), &dev).unwrap();
        let kbuf = Tensor::randn(0f32, 1.0, (b, kvh, cap, hd), &dev).unwrap();
        let vbuf = Tensor::randn(0f32, 1.0, (b, kvh, cap, hd), &dev).unwrap();
        let (k, v) = (kbuf.narrow(2, 0, total).unwrap(), vbuf.narrow(2, 0, total).unwrap());
        let got = decode_attention(&q, &k, &v, &[]).unwrap();
        assert_eq!(got.dims(), &[b, 1, h * hd]);
        let rep = h / kvh;
        let expand = |t: &Tensor| t.unsqueeze(2).unwrap().repeat((1, 1, rep, 1, 1)).unwrap().reshape((b, h, total, hd)).unwrap();
        let (k, v) = (expand(&k.contiguous().unwrap()), expand(&v.contiguous().unwrap()));
        let scores = (q.matmul(&k.t().unwrap()).unwrap() / (hd as f64).sqrt()).unwrap();
        let probs = candle_nn::ops::softmax(&scores, candle_core::D::Minus1).unwrap();
        let want = probs.matmul(&v).unwrap().reshape((b, 1, h * hd)).unwrap();
        let diff = (got - want).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "{diff}");
        // Rows starting later attend as if their first keys were not there.
        let (k, v) = (kbuf.narrow(2, 0, total).unwrap(), vbuf.narrow(2, 0, total).unwrap());
        let starts = [0, 4, 10];
        let got = decode_attention(&q, &k, &v, &starts).unwrap();
        for (row, &s) in starts.iter().enumerate() {
            let one = |t: &Tensor| t.narrow(0, row, 1).unwrap();
            let alone =
                decode_attention(&one(&q), &one(&k).narrow(2, s, total - s).unwrap(), &one(&v).narrow(2, s, total - s).unwrap(), &[])
                    .unwrap();
            let diff = (one(&got) - alone).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-6, "row {row}: {diff}");
        }
        assert!(decode_attention(&q, &k, &v, &[0, 11, 0]).is_err());
    }
}
