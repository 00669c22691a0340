//! x·Wᵀ + b for decoding on the CPU, with W packed once into 16-wide column panels.
//!
//! Decoding multiplies a few rows by every weight matrix. candle's gemm either repacks W on each
//! call or strides through Wᵀ (a page per input for the vocabulary projection). Panels
//! make each weight one sequential stream, and projections of the same input (q/k/v, gate/up)
//! share one pass by packing their panels side by side. Each output is summed over the inputs in
//! the same order whatever the number of rows, so a group and a single row get the same values.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::weights::Weights;
use super::ModelError;

/// Outputs per panel: two AVX registers of f32.
const PANEL: usize = 16;
/// Rows per register tile: 6 × 2 accumulators leave registers for the weights and a broadcast.
const TILE_ROWS: usize = 6;
/// Inputs per block: a 16 KiB panel block stays in L1 while every row tile reads it.
const K_BLOCK: usize = 256;
/// Rows per pass over the weights, so the transposed input block stays in L2.
const ROW_BLOCK: usize = 48;

/// One or more (out, in) projections of the same input, packed for [`PackedLinear::forward`].
#[derive(Clone)]
pub struct PackedLinear {
    /// Per part, per panel: (in, 16) row-major, zero past the part's last output.
    panels: std::sync::Arc<Vec<f32>>,
    inputs: usize,
    outs: Vec<usize>,
    /// Every part's bias in output order, zeros for parts without one; None when no part has one.
    bias: Option<Vec<f32>>,
}

impl PackedLinear {
    /// Whether `w` can be packed: f32 on the CPU.
    pub fn supports(w: &Tensor) -> bool {
        matches!(w.device(), Device::Cpu) && w.dtype() == DType::F32
    }

    /// Packs `parts`, each a weight (out_i, in) with an optional bias (out_i); `in` must agree.
    pub fn new(parts: &[(&Tensor, Option<&Tensor>)]) -> Result<Self> {
        let Some((first, _)) = parts.first() else { candle_core::bail!("packed linear: no weights") };
        let inputs = first.dim(1)?;
        let (mut panels, mut outs, mut bias) = (Vec::new(), Vec::new(), Vec::new());
        let has_bias = parts.iter().any(|(_, b)| b.is_some());
        for (w, b) in parts {
            let (out, inp) = w.dims2()?;
            if inp != inputs {
                candle_core::bail!("packed linear: parts take {inputs} and {inp} inputs");
            }
            let w: Vec<f32> = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            for rows in w.chunks(PANEL * inputs) {
                let base = panels.len();
                panels.resize(base + inputs * PANEL, 0.0);
                for (j, row) in rows.chunks_exact(inputs).enumerate() {
                    for (k, &v) in row.iter().enumerate() {
                        panels[base + k * PANEL + j] = v;
                    }
                }
            }
            if has_bias {
                match b {
                    Some(b) => bias.extend(b.to_dtype(DType::F32)?.to_vec1::<f32>()?),
                    None => bias.extend(std::iter::repeat_n(0.0, out)),
                }
            }
            outs.push(out);
        }
        Ok(PackedLinear { panels: std::sync::Arc::new(panels), inputs, outs, bias: has_bias.then_some(bias) })
    }

    /// xs (…, in) f32 → one tensor (…, out_i) per part, each contiguous; `N` is the part count.
    pub fn forward<const N: usize>(&self, xs: &Tensor) -> Result<[Tensor; N]> {
        let parts = self.forward_parts(xs)?;
        parts.try_into().map_err(|p: Vec<Tensor>| candle_core::Error::Msg(format!("packed linear: {} parts, not {N}", p.len())))
    }

    fn forward_parts(&self, xs: &Tensor) -> Result<Vec<Tensor>> {
        let dims = xs.dims();
        let Some((&inp, lead)) = dims.split_last() else { candle_core::bail!("linear on a scalar") };
        if inp != self.inputs {
            candle_core::bail!("packed linear takes {} inputs, got {inp}", self.inputs);
        }
        let rows: usize = lead.iter().product();
        let flat = xs.contiguous()?.apply_op1_no_bwd(self)?;
        let mut parts = Vec::with_capacity(self.outs.len());
        let mut offset = 0;
        for &out in &self.outs {
            let mut shape = lead.to_vec();
            shape.push(out);
            parts.push(flat.narrow(0, offset, rows * out)?.reshape(shape)?);
            offset += rows * out;
        }
        Ok(parts)
    }

    /// Writes x (rows, in) · Wᵀ + b into `out`, each part as a (rows, out_i) block in turn.
    fn product(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        let k = self.inputs;
        // (part, first output) of every panel, and where each part's block starts in `out`.
        let mut panels = Vec::new();
        let mut part_start = Vec::with_capacity(self.outs.len());
        let (mut start, mut col) = (0, 0);
        for (part, &n) in self.outs.iter().enumerate() {
            part_start.push((start, col));
            panels.extend((0..n).step_by(PANEL).map(|o| (part, o)));
            start += rows * n;
            col += n;
        }
        let per_task = panels.len().div_ceil(4 * rayon::current_num_threads()).max(1);
        let mut xt = Vec::new();
        let mut tiles = Vec::new();
        for r0 in (0..rows).step_by(ROW_BLOCK) {
            let rb = ROW_BLOCK.min(rows - r0);
            // (in, rb): the rows of a tile sit side by side for each input.
            xt.clear();
            xt.resize(k * rb, 0.0);
            for (r, row) in x[r0 * k..(r0 + rb) * k].chunks_exact(k).enumerate() {
                for (kk, &v) in row.iter().enumerate() {
                    xt[kk * rb + r] = v;
                }
            }
            tiles.clear();
            tiles.resize(panels.len() * rb * PANEL, 0.0);
            tiles.par_chunks_mut(per_task * rb * PANEL).enumerate().for_each(|(task, chunk)| {
                for (i, tile) in chunk.chunks_exact_mut(rb * PANEL).enumerate() {
                    let p = task * per_task + i;
                    panel_product(&xt, rb, &self.panels[p * k * PANEL..(p + 1) * k * PANEL], k, tile);
                }
            });
            for (p, &(part, o)) in panels.iter().enumerate() {
                let (base, col) = part_start[part];
                let n = self.outs[part];
                let width = PANEL.min(n - o);
                for r in 0..rb {
                    let src = &tiles[(p * rb + r) * PANEL..][..width];
                    let dst = &mut out[base + (r0 + r) * n + o..][..width];
                    match &self.bias {
                        Some(bias) => {
                            for ((d, s), b) in dst.iter_mut().zip(src).zip(&bias[col + o..]) {
                                *d = s + b;
                            }
                        }
                        None => dst.copy_from_slice(src),
                    }
                }
            }
        }
    }
}

/// `names` (name, outputs) under `prefix`, each `{prefix}.{name}.weight` (out, inputs) with a bias
/// when `bias`, as one packed product; None where the weights cannot be packed.
pub(crate) fn fused_projection(
    w: &Weights,
    prefix: &str,
    names: &[(&str, usize)],
    inputs: usize,
    bias: bool,
) -> std::result::Result<Option<PackedLinear>, ModelError> {
    let mut parts = Vec::with_capacity(names.len());
    for &(name, out) in names {
        let weight = w.get(&format!("{prefix}.{name}.weight"), &[out, inputs])?;
        if !PackedLinear::supports(&weight) {
            return Ok(None);
        }
        let b = if bias { Some(w.get(&format!("{prefix}.{name}.bias"), &[out])?) } else { None };
        parts.push((weight, b));
    }
    let refs: Vec<_> = parts.iter().map(|(w, b)| (w, b.as_ref())).collect();
    Ok(Some(PackedLinear::new(&refs)?))
}

impl CustomOp1 for PackedLinear {
    fn name(&self) -> &'static str {
        "packed-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("packed linear: input is not contiguous") };
        let x = &storage.as_slice::<f32>()?[start..end];
        let rows = x.len() / self.inputs;
        let total = rows * self.outs.iter().sum::<usize>();
        let mut out = vec![0f32; total];
        self.product(x, rows, &mut out);
        Ok((CpuStorage::F32(out), Shape::from(total)))
    }
}

/// tile (rows, 16) = xt (in, rows)ᵀ · panel (in, 16).
fn panel_product(xt: &[f32], rows: usize, panel: &[f32], k: usize, tile: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { panel_product_avx2(xt, rows, panel, k, tile) };
    }
    panel_product_with::<false>(xt, rows, panel, k, tile)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn panel_product_avx2(xt: &[f32], rows: usize, panel: &[f32], k: usize, tile: &mut [f32]) {
    panel_product_with::<true>(xt, rows, panel, k, tile)
}

/// The body both targets compile: inlined, so the AVX2 caller gets 256-bit FMAs.
#[inline(always)]
fn panel_product_with<const FMA: bool>(xt: &[f32], rows: usize, panel: &[f32], k: usize, tile: &mut [f32]) {
    for k0 in (0..k).step_by(K_BLOCK) {
        let k1 = (k0 + K_BLOCK).min(k);
        let (w, x) = (&panel[k0 * PANEL..k1 * PANEL], &xt[k0 * rows..k1 * rows]);
        let mut r = 0;
        while r < rows {
            let n = TILE_ROWS.min(rows - r);
            let acc = &mut tile[r * PANEL..(r + n) * PANEL];
            match n {
                6 => row_tile::<6, FMA>(x, rows, r, w, acc, r == 0),
                5 => row_tile::<5, FMA>(x, rows, r, w, acc, r == 0),
                4 => row_tile::<4, FMA>(x, rows, r, w, acc, r == 0),
                3 => row_tile::<3, FMA>(x, rows, r, w, acc, r == 0),
                2 => row_tile::<2, FMA>(x, rows, r, w, acc, r == 0),
                _ => row_tile::<1, FMA>(x, rows, r, w, acc, r == 0),
            }
            r += n;
        }
    }
}

/// Adds rows r..r + R of xᵀ·w to `out` (R, 16), keeping the sums in registers. The first tile
/// of a block also prefetches the next block, one cache line (one input's 16 weights) per input,
/// so that the weights stream from memory while the arithmetic runs.
#[inline(always)]
fn row_tile<const R: usize, const FMA: bool>(x: &[f32], rows: usize, r: usize, w: &[f32], out: &mut [f32], first: bool) {
    let mut acc = [[0f32; PANEL]; R];
    for (a, o) in acc.iter_mut().zip(out.chunks_exact(PANEL)) {
        a.copy_from_slice(o);
    }
    for (wk, xk) in w.chunks_exact(PANEL).zip(x.chunks_exact(rows)) {
        if first {
            prefetch(wk.as_ptr().wrapping_add(K_BLOCK * PANEL));
        }
        let xk = &xk[r..r + R];
        for (a, &xv) in acc.iter_mut().zip(xk) {
            for (aj, &wj) in a.iter_mut().zip(wk) {
                *aj = if FMA { xv.mul_add(wj, *aj) } else { *aj + xv * wj };
            }
        }
    }
    for (a, o) in acc.iter().zip(out.chunks_exact_mut(PANEL)) {
        o.copy_from_slice(a);
    }
}

#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint and never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Every part equals x·Wᵀ + b, for row counts around the tile and block sizes, outputs that
    /// do not fill a panel and inputs that span several blocks.
    #[test]
    fn parts_equal_unfused_products() {
        let dev = Device::Cpu;
        let k = K_BLOCK + 37;
        let w = [Tensor::randn(0f32, 1.0, (40, k), &dev).unwrap(), Tensor::randn(0f32, 1.0, (7, k), &dev).unwrap()];
        let b = Tensor::randn(0f32, 1.0, 40, &dev).unwrap();
        let packed = PackedLinear::new(&[(&w[0], Some(&b)), (&w[1], None)]).unwrap();
        for rows in [1, 5, 6, 16, ROW_BLOCK + 7] {
            let x = Tensor::randn(0f32, 1.0, (rows, 1, k), &dev).unwrap();
            let parts: [Tensor; 2] = packed.forward(&x).unwrap();
            let x2 = x.squeeze(1).unwrap();
            let want = [x2.matmul(&w[0].t().unwrap()).unwrap().broadcast_add(&b).unwrap(), x2.matmul(&w[1].t().unwrap()).unwrap()];
            for (got, want) in parts.iter().zip(&want) {
                assert_eq!(got.dims(), &[rows, 1, want.dim(1).unwrap()]);
                assert!(max_diff(&got.squeeze(1).unwrap(), want) < 1e-3, "rows {rows}");
            }
        }
    }

    #[test]
    fn a_row_gets_the_same_bits_alone_and_in_a_group() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (33, 300), &dev).unwrap();
        let packed = PackedLinear::new(&[(&w, None)]).unwrap();
        let x = Tensor::randn(0f32, 1.0, (16, 300), &dev).unwrap();
        let group: Vec<Vec<f32>> = packed.forward::<1>(&x).unwrap()[0].to_vec2().unwrap();
        for (i, row) in group.iter().enumerate() {
            let alone: Vec<Vec<f32>> = packed.forward::<1>(&x.narrow(0, i, 1).unwrap()).unwrap()[0].to_vec2().unwrap();
            assert_eq!(&alone[0], row, "row {i}");
        }
    }
}
