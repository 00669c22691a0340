//! Matrix products of the model: candle's gemm by default, a system BLAS with `--features blas`.
//!
//! On this project's CPUs candle's own gemm reaches about half the f32 rate of an optimised
//! BLAS on the learner's shapes (BENCHMARKS.md, `srlm bench matmul`), so with the feature every
//! f32 product on the CPU goes through `cblas_sgemm`, forward and backward.

use candle_core::{Result, Tensor};

/// a (…, m, k) · b (…, k, n) → (…, m, n), same batch dims; differentiable either way.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    #[cfg(feature = "blas")]
    if super::blas::handles(a, b) {
        return super::blas::matmul(a, b);
    }
    a.matmul(b)
}

/// Whether [`matmul`] goes to the system BLAS for these operands.
pub fn uses_blas(a: &Tensor, b: &Tensor) -> bool {
    #[cfg(feature = "blas")]
    return super::blas::handles(a, b);
    #[cfg(not(feature = "blas"))]
    {
        let _ = (a, b);
        false
    }
}
