//! Gradient accumulation over micro-batches as parallel passes over raw slices.
//!
//! candle's `a + b` is a fresh allocation and one pass on one thread (the binary ops run on
//! `CANDLE_NUM_THREADS`, 1 by default here), so summing micro-batches' weight gradients that
//! way is a serial pass over the whole model per micro-batch.

use candle_core::{CpuStorage, Device, Storage, Tensor, WithDType};
use rayon::prelude::*;

use super::fused::{in_place, range, same_cpu_floats, CHUNK};

/// a + b as a new contiguous tensor, chunks in parallel; None unless both are contiguous CPU
/// f32/f64 tensors of one shape and dtype.
pub(super) fn sum(a: &Tensor, b: &Tensor) -> Option<Tensor> {
    if !same_cpu_floats(&[a, b]) {
        return None;
    }
    let (sa, la) = a.storage_and_layout();
    let (sb, lb) = b.storage_and_layout();
    let out = match (&*sa, &*sb) {
        (Storage::Cpu(CpuStorage::F32(x)), Storage::Cpu(CpuStorage::F32(y))) => {
            Tensor::from_vec(added(&x[range(la).ok()?], &y[range(lb).ok()?]), a.shape(), &Device::Cpu)
        }
        (Storage::Cpu(CpuStorage::F64(x)), Storage::Cpu(CpuStorage::F64(y))) => {
            Tensor::from_vec(added(&x[range(la).ok()?], &y[range(lb).ok()?]), a.shape(), &Device::Cpu)
        }
        _ => return None,
    };
    out.ok()
}

/// sum += g in place; Ok(false), with nothing touched, where `sum` cannot take it.
pub(super) fn add_assign(sum: &Tensor, g: &Tensor) -> candle_core::Result<bool> {
    if !same_cpu_floats(&[sum, g]) {
        return Ok(false);
    }
    let (gs, gl) = g.storage_and_layout();
    in_place(sum, |s, sl| {
        match (s, &*gs) {
            (CpuStorage::F32(s), Storage::Cpu(CpuStorage::F32(g))) => add_into(&mut s[range(sl)?], &g[range(gl)?]),
            (CpuStorage::F64(s), Storage::Cpu(CpuStorage::F64(g))) => add_into(&mut s[range(sl)?], &g[range(gl)?]),
            _ => candle_core::bail!("gradient sum: operands changed dtype or device"),
        }
        Ok(())
    })?;
    Ok(true)
}

fn added<T: WithDType>(x: &[T], y: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK))).for_each(|(out, (x, y))| {
        for ((o, &x), &y) in out.iter_mut().zip(x).zip(y) {
            *o = x + y;
        }
    });
    out
}

fn add_into<T: WithDType>(s: &mut [T], g: &[T]) {
    s.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(s, g)| {
        for (s, &g) in s.iter_mut().zip(g) {
            *s += g;
        }
    });
}
