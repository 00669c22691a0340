//! f32 matrix products through a system CBLAS (`--features blas`), as a candle custom op whose
//! backward pass is two more such products. The library is linked by build.rs (OpenBLAS by
//! default; see README "Faster matrix products").

use std::os::raw::c_int;

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Result, Shape, Tensor};

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn cblas_sgemm(
        layout: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    );
}

/// f32 operands on the CPU with at least two dims each.
pub fn handles(a: &Tensor, b: &Tensor) -> bool {
    matches!(a.device(), Device::Cpu) && a.dtype() == DType::F32 && b.dtype() == DType::F32 && a.rank() >= 2 && a.rank() == b.rank()
}

pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (a, b) = (gemm_ready(a)?, gemm_ready(b)?);
    a.apply_op2(&b, BlasMatmul)
}

/// The tensor itself when BLAS can read it in place (row-major or transposed matrices at a
/// fixed batch stride), else a contiguous copy.
fn gemm_ready(t: &Tensor) -> Result<Tensor> {
    if Matrices::of(t.layout()).is_some() {
        Ok(t.clone())
    } else {
        t.contiguous()
    }
}

/// How a (batch…, rows, cols) layout sits in memory, in BLAS terms.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Matrices {
    offset: usize,
    count: usize,
    /// Elements between consecutive matrices of the batch.
    batch_stride: usize,
    rows: usize,
    cols: usize,
    /// Stored column-major (a transposed view of a row-major matrix).
    transposed: bool,
    /// BLAS leading dimension.
    ld: usize,
}

impl Matrices {
    fn of(layout: &Layout) -> Option<Matrices> {
        let dims = layout.dims();
        let stride = layout.stride();
        let r = dims.len();
        if r < 2 {
            return None;
        }
        let (rows, cols) = (dims[r - 2], dims[r - 1]);
        // A dim of size 1 can have any stride; give it the one that makes the test below pass.
        let row_stride = if rows == 1 { cols.max(1) } else { stride[r - 2] };
        let col_stride = if cols == 1 { 1 } else { stride[r - 1] };
        let (transposed, ld) = if col_stride == 1 && row_stride >= cols.max(1) {
            (false, row_stride)
        } else if row_stride == 1 && col_stride >= rows.max(1) {
            (true, col_stride)
        } else if rows == 1 && cols == 1 {
            (false, 1)
        } else {
            return None;
        };
        // The batch dims must collapse into one stride.
        let mut count = 1;
        let mut batch_stride = 0;
        for i in (0..r - 2).rev() {
            if dims[i] == 1 {
                continue;
            }
            if count == 1 {
                batch_stride = stride[i];
            } else if stride[i] != batch_stride * count {
                return None;
            }
            count *= dims[i];
        }
        Some(Matrices { offset: layout.start_offset(), count, batch_stride, rows, cols, transposed, ld })
    }
}

struct BlasMatmul;

impl CustomOp2 for BlasMatmul {
    fn name(&self) -> &'static str {
        "blas-matmul"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (da, db) = (l1.dims(), l2.dims());
        let r = da.len();
        if db.len() != r || da[..r - 2] != db[..r - 2] || da[r - 1] != db[r - 2] {
            candle_core::bail!("blas matmul: shapes {da:?} and {db:?} do not multiply");
        }
        let (Some(ma), Some(mb)) = (Matrices::of(l1), Matrices::of(l2)) else {
            candle_core::bail!("blas matmul: operand layouts are not BLAS-readable");
        };
        let (a, b) = (s1.as_slice::<f32>()?, s2.as_slice::<f32>()?);
        let (m, k, n) = (ma.rows, ma.cols, mb.cols);
        let mut out_dims = da[..r - 2].to_vec();
        out_dims.extend([m, n]);
        let mut c = vec![0f32; ma.count * m * n];
        check_bounds(a.len(), &ma)?;
        check_bounds(b.len(), &mb)?;
        let to_int =
            |x: usize| c_int::try_from(x).map_err(|_| candle_core::Error::Msg(format!("blas matmul: {x} exceeds the BLAS int range")));
        let (mi, ni, ki, lda, ldb, ldc) = (to_int(m)?, to_int(n)?, to_int(k)?, to_int(ma.ld)?, to_int(mb.ld)?, to_int(n.max(1))?);
        if m * n * k > 0 {
            for i in 0..ma.count {
                let pa = &a[ma.offset + i * ma.batch_stride..];
                let pb = &b[mb.offset + i * mb.batch_stride..];
                let pc = &mut c[i * m * n..];
                // SAFETY: check_bounds showed every element BLAS reads lies inside a and b; c holds
                // count · m · n elements and ldc = n.
                unsafe {
                    cblas_sgemm(
                        ROW_MAJOR,
                        if ma.transposed { TRANS } else { NO_TRANS },
                        if mb.transposed { TRANS } else { NO_TRANS },
                        mi,
                        ni,
                        ki,
                        1.0,
                        pa.as_ptr(),
                        lda,
                        pb.as_ptr(),
                        ldb,
                        0.0,
                        pc.as_mut_ptr(),
                        ldc,
                    );
                }
            }
        }
        Ok((CpuStorage::F32(c), Shape::from(out_dims)))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_a = super::matmul::matmul(grad, &b.t()?)?;
        let grad_b = super::matmul::matmul(&a.t()?, grad)?;
        Ok((Some(grad_a), Some(grad_b)))
    }
}

/// The last element BLAS touches must lie inside the storage.
fn check_bounds(len: usize, m: &Matrices) -> Result<()> {
    if m.count == 0 || m.rows == 0 || m.cols == 0 {
        return Ok(());
    }
    let (outer, inner) = if m.transposed { (m.cols, m.rows) } else { (m.rows, m.cols) };
    let last = m.offset + (m.count - 1) * m.batch_stride + (outer - 1) * m.ld + inner - 1;
    if last >= len {
        candle_core::bail!("blas matmul: layout reaches element {last} of a storage of {len}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_of(t: &Tensor) -> Option<Matrices> {
        Matrices::of(t.layout())
    }

    #[test]
    fn reads_row_major_transposed_and_batched_layouts() {
        let t = Tensor::zeros((2, 3, 4, 5), DType::F32, &Device::Cpu).unwrap();
        let m = layout_of(&t).unwrap();
        assert_eq!((m.count, m.batch_stride, m.transposed, m.ld), (6, 20, false, 5));
        let tt = t.t().unwrap();
        let m = layout_of(&tt).unwrap();
        assert_eq!((m.rows, m.cols, m.transposed, m.ld), (5, 4, true, 5));
        // A narrowed column block keeps its row stride as the leading dimension.
        let n = t.narrow(3, 1, 2).unwrap();
        let m = layout_of(&n).unwrap();
        assert_eq!((m.offset, m.cols, m.ld), (1, 2, 5));
        // Swapping batch dims breaks the single batch stride.
        assert!(layout_of(&t.transpose(0, 1).unwrap()).is_none());
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    type View = fn(&Tensor) -> candle_core::Result<Tensor>;

    /// Values and gradients against candle's own gemm, on every layout the model produces:
    /// x·Wᵀ, batched attention products with transposed keys, a narrowed cache, permuted batches.
    #[test]
    fn products_and_gradients_equal_candles_gemm() {
        use candle_core::Var;
        let same: View = |t| Ok(t.clone());
        let t: View = |t| t.t();
        let cases: Vec<(&[usize], View, &[usize], View)> = vec![
            (&[7, 5], same, &[3, 5], t),
            (&[7, 5], same, &[5, 3], same),
            (&[5, 7], t, &[5, 3], same),
            (&[2, 3, 4, 6], same, &[2, 3, 5, 6], t),
            (&[2, 3, 4, 5], same, &[2, 3, 9, 6], |t| t.narrow(2, 2, 5)),
            (&[3, 2, 4, 5], |t| t.transpose(0, 1), &[2, 3, 5, 1], same),
            (&[1, 5], same, &[5, 1], same),
        ];
        let dev = Device::Cpu;
        for (i, (sa, va, sb, vb)) in cases.into_iter().enumerate() {
            let a = Var::randn(0f32, 1.0, sa, &dev).unwrap();
            let b = Var::randn(0f32, 1.0, sb, &dev).unwrap();
            let (x, y) = (va(a.as_tensor()).unwrap(), vb(b.as_tensor()).unwrap());
            let ours = matmul(&x, &y).unwrap();
            let reference = x.contiguous().unwrap().matmul(&y.contiguous().unwrap()).unwrap();
            assert!(max_diff(&ours, &reference) < 1e-5, "case {i}: product differs");
            // A random weighting makes every output element's gradient distinct.
            let w = Tensor::randn(0f32, 1.0, ours.dims(), &dev).unwrap();
            let grads = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let rgrads = (reference * &w).unwrap().sum_all().unwrap().backward().unwrap();
            for (v, name) in [(&a, "a"), (&b, "b")] {
                let (g, rg) = (grads.get(v.as_tensor()).unwrap(), rgrads.get(v.as_tensor()).unwrap());
                assert!(max_diff(g, rg) < 1e-4, "case {i}: gradient of {name} differs");
            }
        }
    }
}
