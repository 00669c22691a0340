//! Raw access to CPU tensors for the kernels: typed slices in, tensors out, rows in parallel.

use candle_core::{CpuStorage, Device, Layout, Result, Shape, Storage, Tensor, WithDType};
use rayon::prelude::*;

/// The float types the kernels are written for.
pub(crate) trait Real: WithDType + num_traits::Float + num_traits::NumAssign + super::fast_exp::FastExp + Send + Sync {}
impl Real for f32 {}
impl Real for f64 {}

/// The contiguous elements a CPU storage and layout describe.
pub(crate) fn slice<'a, T: Real>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((lo, hi)) => Ok(&storage.as_slice::<T>()?[lo..hi]),
        None => candle_core::bail!("fused kernel: expects a contiguous operand"),
    }
}

/// Runs `f` on the contiguous CPU elements of `t` (copied into a contiguous layout first if needed).
pub(crate) fn with_slice<T: Real, R>(t: &Tensor, f: impl FnOnce(&[T]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(slice(cpu, layout)?),
        _ => candle_core::bail!("fused kernel: expects a CPU tensor"),
    }
}

/// A CPU tensor of `shape` over `data`.
pub(crate) fn tensor<T: Real>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// Fills `out` in rows of `row_len`, rows in parallel: `f(row index, row)`.
pub(crate) fn for_rows<T: Real>(out: &mut [T], row_len: usize, f: impl Fn(usize, &mut [T]) + Send + Sync) {
    if row_len == 0 {
        return;
    }
    let rows_per_task = rows_per_task(row_len);
    out.par_chunks_mut(rows_per_task * row_len).enumerate().for_each(|(task, chunk)| {
        for (i, row) in chunk.chunks_mut(row_len).enumerate() {
            f(task * rows_per_task + i, row);
        }
    });
}

/// Rows per parallel task: enough that scheduling stays cheap next to the work. Fixed for a row
/// length, so reductions over tasks add in the same order on every run.
pub(crate) fn rows_per_task(row_len: usize) -> usize {
    (16 * 1024 / row_len.max(1)).max(1)
}

/// Σ over rows of `f(row index)` (each a vector of `len`), summed task by task in a fixed order
/// so the result is the same on every run whatever the thread schedule.
pub(crate) fn sum_over_rows<T: Real>(rows: usize, row_len: usize, len: usize, f: impl Fn(usize, &mut [T]) + Send + Sync) -> Vec<T> {
    let per_task = rows_per_task(row_len);
    let partials: Vec<Vec<T>> = (0..rows.div_ceil(per_task))
        .into_par_iter()
        .map(|task| {
            let mut acc = vec![T::zero(); len];
            for r in task * per_task..((task + 1) * per_task).min(rows) {
                f(r, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![T::zero(); len];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}
