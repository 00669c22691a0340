//! AdamW's CPU kernels: one pass per tensor over the raw f32/f64 slices, written in place.
//!
//! The tensor path in `optim.rs` runs about twelve candle ops per parameter, each a full pass that
//! allocates a tensor, and the gradient norm copies every gradient to f64. These kernels apply the same element formulas in the same order, so they
//! agree with the tensor path to the last bit (up to the sign of zero). Anything else (another
//! device or dtype, a strided layout, storage shared between the operands) is left to that path.

use std::cell::RefCell;
use std::ops::Range;

use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Storage, Tensor, WithDType};
use rayon::prelude::*;

/// Elements per rayon task: big enough to amortise the scheduling, small enough to balance.
pub(super) const CHUNK: usize = 1 << 15;

/// The constants of one AdamW update, shared by the fused and the tensor path.
#[derive(Debug, Clone, Copy)]
pub(super) struct Coeffs {
    /// Gradient clipping factor; 1 when not clipping.
    pub scale: f64,
    /// Decoupled weight decay factor `1 - lr·wd`; 1 when the parameter does not decay.
    pub decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// `sqrt(1 - beta2^t)`: the second moment's bias correction.
    pub bc2_sqrt: f64,
    pub eps: f64,
    /// `lr / (1 - beta1^t)`: the first moment's bias correction folded into the step.
    pub step_size: f64,
}

/// Σx² over a contiguous f32/f64 CPU tensor, accumulated in f64; None for any other tensor.
pub(super) fn sum_sq(t: &Tensor) -> Option<f64> {
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(CpuStorage::F32(xs)) => Some(sum_sq_slice(&xs[start..end])),
        Storage::Cpu(CpuStorage::F64(xs)) => Some(sum_sq_slice(&xs[start..end])),
        _ => None,
    }
}

fn sum_sq_slice<T: WithDType>(xs: &[T]) -> f64 {
    // Partial sums added in chunk order, so the total does not depend on rayon's scheduling.
    let parts: Vec<f64> = xs.par_chunks(CHUNK).map(sum_sq_chunk).collect();
    parts.iter().sum()
}

fn sum_sq_chunk<T: WithDType>(xs: &[T]) -> f64 {
    // Eight independent sums: a single one is a dependency chain the compiler cannot vectorise.
    let mut acc = [0f64; 8];
    let mut lanes = xs.chunks_exact(8);
    for x8 in &mut lanes {
        for (a, x) in acc.iter_mut().zip(x8) {
            *a += x.to_f64() * x.to_f64();
        }
    }
    let tail: f64 = lanes.remainder().iter().map(|x| x.to_f64() * x.to_f64()).sum();
    acc.iter().sum::<f64>() + tail
}

/// Updates the weights `w` and the moments `m`, `v` in place from the gradient `g`. Ok(false),
/// with nothing touched, when the four are not contiguous CPU tensors of one shape and one dtype
/// (f32 or f64) in four separate storages.
pub(super) fn adamw_update(w: &Tensor, m: &Tensor, v: &Tensor, g: &Tensor, c: &Coeffs) -> candle_core::Result<bool> {
    let all = [w, m, v, g];
    if !same_cpu_floats(&all) {
        return Ok(false);
    }
    if w.elem_count() == 0 {
        return Ok(true);
    }
    // Nested write locks on one storage would deadlock; distinct non-empty storages have distinct buffers.
    let ptrs = all.map(data_ptr);
    if (1..ptrs.len()).any(|i| ptrs[..i].contains(&ptrs[i])) {
        return Ok(false);
    }
    in_place(w, |ws, wl| {
        in_place(m, |ms, ml| {
            in_place(v, |vs, vl| {
                let (gs, gl) = g.storage_and_layout();
                match (&mut *ws, &mut *ms, vs, &*gs) {
                    (CpuStorage::F32(w), CpuStorage::F32(m), CpuStorage::F32(v), Storage::Cpu(CpuStorage::F32(g))) => {
                        update(&mut w[range(wl)?], &mut m[range(ml)?], &mut v[range(vl)?], &g[range(gl)?], c)
                    }
                    (CpuStorage::F64(w), CpuStorage::F64(m), CpuStorage::F64(v), Storage::Cpu(CpuStorage::F64(g))) => {
                        update(&mut w[range(wl)?], &mut m[range(ml)?], &mut v[range(vl)?], &g[range(gl)?], c)
                    }
                    _ => candle_core::bail!("adamw: operands changed dtype or device during the update"),
                }
                Ok(())
            })
        })
    })?;
    Ok(true)
}

/// Whether all are contiguous CPU tensors of one shape and one dtype, f32 or f64: what the raw
/// slice kernels here and in `grad_sum` take.
pub(super) fn same_cpu_floats(all: &[&Tensor]) -> bool {
    let Some(first) = all.first() else { return true };
    let alike = |t: &&Tensor| t.device().is_cpu() && t.dtype() == first.dtype() && t.is_contiguous() && t.shape() == first.shape();
    matches!(first.dtype(), DType::F32 | DType::F64) && all.iter().all(alike)
}

/// The address of a CPU f32/f64 tensor's whole buffer (0 for any other tensor).
fn data_ptr(t: &Tensor) -> usize {
    match &*t.storage_and_layout().0 {
        Storage::Cpu(CpuStorage::F32(xs)) => xs.as_ptr() as usize,
        Storage::Cpu(CpuStorage::F64(xs)) => xs.as_ptr() as usize,
        _ => 0,
    }
}

/// The elements a contiguous layout covers.
pub(super) fn range(l: &Layout) -> candle_core::Result<Range<usize>> {
    let (start, end) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("adamw: strided operand".into()))?;
    Ok(start..end)
}

/// Runs `f` on a tensor's CPU storage under the tensor's write lock: candle's safe in-place write.
pub(super) fn in_place<F>(t: &Tensor, f: F) -> candle_core::Result<()>
where
    F: FnMut(&mut CpuStorage, &Layout) -> candle_core::Result<()>,
{
    t.inplace_op1(&InPlace(RefCell::new(f)))
}

struct InPlace<F>(RefCell<F>);

impl<F> InplaceOp1 for InPlace<F>
where
    F: FnMut(&mut CpuStorage, &Layout) -> candle_core::Result<()>,
{
    fn name(&self) -> &'static str {
        "adamw-fused"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        (*self.0.borrow_mut())(storage, layout)
    }
}

/// What the kernel needs beyond candle's `WithDType`.
trait Float: WithDType {
    fn sqrt(self) -> Self;
}

impl Float for f32 {
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

impl Float for f64 {
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

fn update<T: Float>(w: &mut [T], m: &mut [T], v: &mut [T], g: &[T], c: &Coeffs) {
    w.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(|(((w, m), v), g)| update_chunk(w, m, v, g, c));
}

fn update_chunk<T: Float>(w: &mut [T], m: &mut [T], v: &mut [T], g: &[T], c: &Coeffs) {
    // Constants cast to T as candle's affine op casts them; multiplying by a factor of 1 is exact,
    // so no branch is needed for "not clipping" or "no decay".
    let t = T::from_f64;
    let (scale, decay, b1, b2) = (t(c.scale), t(c.decay), t(c.beta1), t(c.beta2));
    let (one_b1, one_b2) = (t(1.0 - c.beta1), t(1.0 - c.beta2));
    let (inv_bc2, eps, step_size) = (t(1.0 / c.bc2_sqrt), t(c.eps), t(c.step_size));
    for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        let g = g * scale;
        *m = *m * b1 + g * one_b1;
        *v = *v * b2 + g * g * one_b2;
        let denom = v.sqrt() * inv_bc2 + eps;
        *w = *w * decay - *m / denom * step_size;
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::super::{AdamW, AdamWConfig};
    use super::*;

    /// A weight matrix over two rayon chunks, a bias, and a norm that never gets a gradient.
    fn optimizer(dtype: DType, weight_decay: f64, max_grad_norm: Option<f64>, fused: bool) -> AdamW {
        let var = |name: &str, shape: &[usize]| {
            let n: usize = shape.iter().product();
            let xs: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 0.1).collect();
            let t = Tensor::from_vec(xs, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            (name.to_string(), Var::from_tensor(&t).unwrap())
        };
        let params = vec![var("l.weight", &[300, 129]), var("l.bias", &[129]), var("norm.weight", &[129])];
        let cfg = AdamWConfig { lr: 1e-2, weight_decay, max_grad_norm, ..AdamWConfig::default() };
        let mut opt = AdamW::new(params, cfg).unwrap();
        opt.fused = fused;
        opt
    }

    /// Gradients for the first two parameters, different at each step; `amp` sets their norm.
    fn step(opt: &mut AdamW, k: usize, amp: f64) -> f64 {
        let mut acc = opt.accumulator();
        for (i, (sum, var)) in acc.sums.iter_mut().zip(&acc.vars).take(2).enumerate() {
            let t = var.as_tensor();
            let xs: Vec<f64> = (0..t.elem_count()).map(|j| ((j * 7 + k * 13 + i) as f64 * 0.11).cos() * amp).collect();
            *sum = Some(Tensor::from_vec(xs, t.shape(), &Device::Cpu).unwrap().to_dtype(t.dtype()).unwrap());
        }
        let report = opt.step(acc).unwrap();
        assert!(report.applied);
        report.grad_norm
    }

    fn values(t: &Tensor) -> Vec<f64> {
        t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()
    }

    /// Each element within `tol` of the tensor's largest magnitude: weights that decay towards 0
    /// keep the absolute error of the whole tensor, not a relative one of their own.
    fn assert_close(what: &str, a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len(), "{what}");
        let bound = tol * b.iter().fold(f64::MIN_POSITIVE, |m, x| m.max(x.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= bound, "{what}[{i}]: fused {x} vs tensor ops {y}");
        }
    }

    fn fused_matches_tensor_ops(dtype: DType, tol: f64) {
        // The gradient norm is about 140·amp: amp 1e-3 stays under the threshold, amp 1 is clipped.
        let cases = [(0.0, None, 1.0), (0.1, Some(1.0), 1e-3), (0.1, Some(1.0), 1.0), (0.0, Some(1.0), 1.0)];
        for (weight_decay, max_grad_norm, amp) in cases {
            let case = format!("{dtype:?} wd {weight_decay} max norm {max_grad_norm:?} amp {amp}");
            let mut fused = optimizer(dtype, weight_decay, max_grad_norm, true);
            let mut ops = optimizer(dtype, weight_decay, max_grad_norm, false);
            for k in 0..5 {
                let (nf, no) = (step(&mut fused, k, amp), step(&mut ops, k, amp));
                assert_close(&format!("{case} step {k} grad norm"), &[nf], &[no], 1e-12);
                assert_eq!(nf > 1.0, amp == 1.0, "{case}: grad norm {nf}");
            }
            for ((name, a), (_, b)) in fused.params().zip(ops.params()) {
                assert_close(&format!("{case} {name}"), &values(a.as_tensor()), &values(b.as_tensor()), tol);
            }
            let (mf, mo) = (fused.moments(), ops.moments());
            for (key, t) in &mf {
                assert_close(&format!("{case} {key}"), &values(t), &values(&mo[key]), tol);
            }
            assert!(values(&mf["m.norm.weight"]).iter().all(|&x| x == 0.0), "{case}: a parameter without gradient moved");
        }
    }

    #[test]
    fn fused_f32_matches_tensor_ops() {
        fused_matches_tensor_ops(DType::F32, 1e-6);
    }

    #[test]
    fn fused_f64_matches_tensor_ops() {
        fused_matches_tensor_ops(DType::F64, 1e-12);
    }

    #[test]
    fn fused_update_takes_cpu_floats_and_declines_the_rest() {
        let c = Coeffs { scale: 1.0, decay: 1.0, beta1: 0.9, beta2: 0.999, bc2_sqrt: 0.1, eps: 1e-8, step_size: 1e-3 };
        let t = |dtype| Tensor::ones((4, 3), dtype, &Device::Cpu).unwrap();
        let fused = |w: &Tensor, g: &Tensor| adamw_update(w, &w.zeros_like().unwrap(), &w.zeros_like().unwrap(), g, &c).unwrap();
        for dtype in [DType::F32, DType::F64] {
            assert!(fused(&t(dtype), &t(dtype)), "{dtype:?}");
        }
        assert!(!fused(&t(DType::BF16), &t(DType::BF16)));
        assert!(!fused(&t(DType::F32), &t(DType::F32).t().unwrap().contiguous().unwrap().t().unwrap()), "strided gradient");
        let w = t(DType::F32);
        assert!(!fused(&w, &w.clone()), "gradient sharing the weights' storage");
        assert_eq!(sum_sq(&t(DType::F32)), Some(12.0));
        assert_eq!(sum_sq(&t(DType::BF16)), None);
    }

    #[test]
    fn restored_moments_are_not_shared_with_the_saved_ones() {
        let mut opt = optimizer(DType::F32, 0.0, None, true);
        step(&mut opt, 0, 1.0);
        let saved = opt.moments();
        let before = values(&saved["v.l.weight"]);
        let mut other = optimizer(DType::F32, 0.0, None, true);
        other.restore(1, 0, &saved).unwrap();
        step(&mut other, 1, 1.0);
        assert_eq!(values(&saved["v.l.weight"]), before);
    }

    /// Optional micro-benchmark: steps alternately through each path on 135M f32 parameters (the
    /// size of SmolLM2-135M) and prints the times; it asserts nothing about them.
    #[test]
    #[ignore = "timing: cargo test --lib optim::fused::tests::step_timing -- --ignored --nocapture"]
    fn step_timing() {
        let shape = (576, 7808);
        let params = (0..30).map(|i| (format!("l{i}.weight"), Var::ones(shape, DType::F32, &Device::Cpu).unwrap()));
        let mut opt = AdamW::new(params.collect(), AdamWConfig { weight_decay: 0.1, ..AdamWConfig::default() }).unwrap();
        let g = (Tensor::ones(shape, DType::F32, &Device::Cpu).unwrap() * 1e-3).unwrap();
        for fused in [false, true, false, true] {
            opt.fused = fused;
            let mut acc = opt.accumulator();
            acc.sums.iter_mut().for_each(|s| *s = Some(g.clone()));
            let start = std::time::Instant::now();
            opt.step(acc).unwrap();
            println!("fused {fused}: {:.3} s", start.elapsed().as_secs_f64());
        }
    }
}
