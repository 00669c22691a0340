//! Checks a fused kernel against the candle graph it replaces: same value, same gradients.

use candle_core::{DType, Device, Result, Tensor, Var};

/// Deterministic pseudo-random values in [-1, 1) of `shape` (a seed per tensor).
pub(crate) fn random(shape: &[usize], dtype: DType, seed: u64) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data: Vec<f64> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu)?.to_dtype(dtype)
}

/// `fused` and `reference` over the same inputs (all made trainable): equal values, and equal
/// gradients of Σ value ∘ c for a fixed random c.
pub(crate) fn assert_same_values_and_grads(
    inputs: &[Tensor],
    fused: impl Fn(&[Tensor]) -> Result<Tensor>,
    reference: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<()> {
    let vars: Vec<Var> = inputs.iter().map(Var::from_tensor).collect::<Result<_>>()?;
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let (ours, theirs) = (fused(&tensors)?, reference(&tensors)?);
    let dtype = ours.dtype();
    let tol = if dtype == DType::F64 { 1e-10 } else { 1e-4 };
    assert_eq!(ours.dims(), theirs.dims(), "shapes differ");
    let max_diff =
        |a: &Tensor, b: &Tensor| -> Result<f64> { (a - b)?.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F64)?.to_scalar::<f64>() };
    let d = max_diff(&ours, &theirs)?;
    assert!(d < tol, "{dtype:?}: values differ by {d}");
    let c = random(ours.dims(), dtype, 99)?;
    let g_ours = (&ours * &c)?.sum_all()?.backward()?;
    let g_theirs = (&theirs * &c)?.sum_all()?.backward()?;
    for (i, v) in vars.iter().enumerate() {
        match (g_ours.get(v.as_tensor()), g_theirs.get(v.as_tensor())) {
            (Some(a), Some(b)) => {
                let d = max_diff(a, b)?;
                assert!(d < tol, "{dtype:?}: gradient of input {i} differs by {d}");
            }
            (None, None) => {}
            (a, b) => panic!("input {i}: gradient present in fused {} / reference {}", a.is_some(), b.is_some()),
        }
    }
    Ok(())
}
