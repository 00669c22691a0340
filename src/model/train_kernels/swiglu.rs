//! silu(gate) · up, the MLP's gating, one node with its backward.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::cpu::{for_rows, slice, tensor, with_slice, Real};

/// gate, up (…, n) of one shape → silu(gate) · up.
pub(crate) fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        candle_core::bail!("swiglu: gate {:?} and up {:?} differ in shape", gate.dims(), up.dims());
    }
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

struct SwiGlu;

/// Elements per parallel task (the kernels work on flat arrays).
const CHUNK: usize = 4096;

fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).fast_exp())
}

fn forward<T: Real>(gate: &[T], up: &[T]) -> Vec<T> {
    let mut y = vec![T::zero(); gate.len()];
    for_rows(&mut y, CHUNK, |c, out| {
        let base = c * CHUNK;
        for (i, o) in out.iter_mut().enumerate() {
            let g = gate[base + i];
            *o = g * sigmoid(g) * up[base + i];
        }
    });
    y
}

/// d gate = g · up · σ(x)(1 + x(1 − σ(x))), d up = g · silu(x), with x the gate.
fn backward<T: Real>(gate: &[T], up: &[T], g: &[T]) -> (Vec<T>, Vec<T>) {
    let mut d_gate = vec![T::zero(); gate.len()];
    let mut d_up = vec![T::zero(); gate.len()];
    for_rows(&mut d_gate, CHUNK, |c, out| {
        let base = c * CHUNK;
        for (i, o) in out.iter_mut().enumerate() {
            let (x, s) = (gate[base + i], sigmoid(gate[base + i]));
            *o = g[base + i] * up[base + i] * s * (T::one() + x * (T::one() - s));
        }
    });
    for_rows(&mut d_up, CHUNK, |c, out| {
        let base = c * CHUNK;
        for (i, o) in out.iter_mut().enumerate() {
            let x = gate[base + i];
            *o = g[base + i] * x * sigmoid(x);
        }
    });
    (d_gate, d_up)
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let storage = match s1.dtype() {
            DType::F32 => CpuStorage::F32(forward::<f32>(slice(s1, l1)?, slice(s2, l2)?)),
            DType::F64 => CpuStorage::F64(forward::<f64>(slice(s1, l1)?, slice(s2, l2)?)),
            other => candle_core::bail!("fused-swiglu: unsupported dtype {other:?}"),
        };
        Ok((storage, l1.shape().clone()))
    }

    fn bwd(&self, gate: &Tensor, up: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        fn run<T: Real>(gate: &Tensor, up: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor)> {
            let (dg, du) = with_slice::<T, _>(gate, |a| with_slice::<T, _>(up, |b| with_slice::<T, _>(g, |c| Ok(backward(a, b, c)))))?;
            Ok((tensor(dg, gate.shape())?, tensor(du, up.shape())?))
        }
        let (dg, du) = match gate.dtype() {
            DType::F32 => run::<f32>(gate, up, grad)?,
            _ => run::<f64>(gate, up, grad)?,
        };
        Ok((Some(dg).filter(|_| gate.track_op()), Some(du).filter(|_| up.track_op())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::train_kernels::test_support::{assert_same_values_and_grads, random};

    #[test]
    fn value_and_gradients_equal_the_unfused_graph() -> Result<()> {
        for dtype in [DType::F64, DType::F32] {
            // More elements than one parallel chunk, and not a multiple of it.
            let gate = (random(&[3, 2000], dtype, 3)? * 4.0)?;
            let up = random(&[3, 2000], dtype, 4)?;
            assert_same_values_and_grads(&[gate, up], |v| swiglu(&v[0], &v[1]), |v| v[0].silu()? * &v[1])?;
        }
        Ok(())
    }
}
