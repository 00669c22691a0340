//! Between token-major rows (b, t, n·hd) and head-major blocks (b, n, t, hd), with the rotary
//! rotation applied on the way in: one node where reshape, transpose, copy and ~10 rotary ops
//! were.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

use super::cpu::{for_rows, slice, tensor, with_slice, Real};

/// cos and sin (t, hd / 2) for every row or (b, t, hd / 2) per row, in the working dtype.
pub(crate) struct Rotation<'a> {
    pub cos: &'a Tensor,
    pub sin: &'a Tensor,
}

/// x with b·t·n·hd elements in (b, t, n, hd) order → (b, n, t, hd), each head vector rotated
/// by its position's angles (HF's half-rotation layout) when `rotation` is given.
pub(crate) fn split_heads(x: &Tensor, (b, t, n, hd): (usize, usize, usize, usize), rotation: Option<Rotation>) -> Result<Tensor> {
    let rope = match rotation {
        Some(r) => Some((r.cos.contiguous()?, r.sin.contiguous()?)),
        None => None,
    };
    x.contiguous()?.apply_op1(Permute { dims: (b, t, n, hd), to_heads: true, rope })
}

/// x (b, n, t, hd) (any shape with that element order) → (b·t, n·hd) token-major rows.
pub(crate) fn merge_heads(x: &Tensor, (b, t, n, hd): (usize, usize, usize, usize)) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Permute { dims: (b, t, n, hd), to_heads: false, rope: None })?.reshape((b * t, n * hd))
}

struct Permute {
    dims: (usize, usize, usize, usize),
    /// (b, t, n, hd) → (b, n, t, hd) when true, the reverse when false.
    to_heads: bool,
    rope: Option<(Tensor, Tensor)>,
}

/// The rotary tables as slices, and whether they have one block per batch row.
struct Angles<'a, T> {
    cos: &'a [T],
    sin: &'a [T],
    per_batch: bool,
    /// +1 rotates forward, −1 undoes the rotation (the backward pass).
    sign: T,
}

fn permute<T: Real>(x: &[T], (_, t, n, hd): (usize, usize, usize, usize), to_heads: bool, angles: Option<Angles<T>>) -> Vec<T> {
    let half = hd / 2;
    let mut y = vec![T::zero(); x.len()];
    for_rows(&mut y, hd, |r, out| {
        // The output row's batch and time, and where its vector sits in the input.
        let (bi, ti, src) = if to_heads {
            let (bi, hi, ti) = (r / (n * t), (r / t) % n, r % t);
            (bi, ti, ((bi * t + ti) * n + hi) * hd)
        } else {
            let (bi, ti, hi) = (r / (t * n), (r / n) % t, r % n);
            (bi, ti, ((bi * n + hi) * t + ti) * hd)
        };
        let row = &x[src..src + hd];
        match &angles {
            None => out.copy_from_slice(row),
            Some(a) => {
                let at = (if a.per_batch { bi * t + ti } else { ti }) * half;
                let (cos, sin) = (&a.cos[at..at + half], &a.sin[at..at + half]);
                let (x1, x2) = row.split_at(half);
                let (o1, o2) = out.split_at_mut(half);
                for i in 0..half {
                    let (c, s) = (cos[i], a.sign * sin[i]);
                    o1[i] = x1[i] * c - x2[i] * s;
                    o2[i] = x2[i] * c + x1[i] * s;
                }
            }
        }
    });
    y
}

impl Permute {
    fn out_shape(&self, to_heads: bool) -> Shape {
        let (b, t, n, hd) = self.dims;
        if to_heads {
            (b, n, t, hd).into()
        } else {
            (b, t, n, hd).into()
        }
    }

    /// Runs the permutation (direction `to_heads`, rotation sign `sign`) on CPU elements.
    fn run<T: Real>(&self, x: &[T], to_heads: bool, sign: f64) -> Result<Vec<T>> {
        let (b, t, n, hd) = self.dims;
        if x.len() != b * t * n * hd {
            candle_core::bail!("split/merge heads: {} elements, expected {b}·{t}·{n}·{hd}", x.len());
        }
        match &self.rope {
            None => Ok(permute(x, self.dims, to_heads, None)),
            Some((cos, sin)) => with_slice::<T, _>(cos, |c| {
                with_slice::<T, _>(sin, |s| {
                    let per_batch = cos.rank() == 3;
                    let sign = T::from(sign).unwrap_or_else(T::one);
                    Ok(permute(x, self.dims, to_heads, Some(Angles { cos: c, sin: s, per_batch, sign })))
                })
            }),
        }
    }
}

impl CustomOp1 for Permute {
    fn name(&self) -> &'static str {
        "split-merge-heads"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let storage = match s.dtype() {
            DType::F32 => CpuStorage::F32(self.run::<f32>(slice(s, l)?, self.to_heads, 1.0)?),
            DType::F64 => CpuStorage::F64(self.run::<f64>(slice(s, l)?, self.to_heads, 1.0)?),
            other => candle_core::bail!("split/merge heads: unsupported dtype {other:?}"),
        };
        Ok((storage, self.out_shape(self.to_heads)))
    }

    /// The reverse permutation of the gradient, rotated back by the same angles.
    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let back = !self.to_heads;
        let dx = match grad.dtype() {
            DType::F32 => tensor(with_slice::<f32, _>(grad, |g| self.run(g, back, -1.0))?, self.out_shape(back))?,
            _ => tensor(with_slice::<f64, _>(grad, |g| self.run(g, back, -1.0))?, self.out_shape(back))?,
        };
        Ok(Some(dx.reshape(x.shape())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::train_kernels::test_support::{assert_same_values_and_grads, random};
    use candle_core::D;

    /// The unfused graph: reshape, transpose, copy, then rotate_half.
    fn reference(x: &Tensor, dims: (usize, usize, usize, usize), cos: Option<(&Tensor, &Tensor)>) -> Result<Tensor> {
        let (b, t, n, hd) = dims;
        let x = x.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()?;
        let Some((cos, sin)) = cos else { return Ok(x) };
        let (cos, sin) = match cos.rank() {
            2 => (cos.unsqueeze(0)?.unsqueeze(0)?, sin.unsqueeze(0)?.unsqueeze(0)?),
            _ => (cos.unsqueeze(1)?, sin.unsqueeze(1)?),
        };
        let (x1, x2) = (x.narrow(D::Minus1, 0, hd / 2)?, x.narrow(D::Minus1, hd / 2, hd / 2)?);
        let r1 = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
        let r2 = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
        Tensor::cat(&[r1, r2], D::Minus1)
    }

    #[test]
    fn split_with_shared_and_per_row_angles_equals_the_unfused_graph() -> Result<()> {
        let dims = (2, 5, 3, 8);
        for dtype in [DType::F64, DType::F32] {
            let x = random(&[2, 5, 24], dtype, 5)?;
            for per_batch in [false, true] {
                let table = if per_batch { vec![2, 5, 4] } else { vec![5, 4] };
                let (cos, sin) = (random(&table, dtype, 6)?, random(&table, dtype, 7)?);
                assert_same_values_and_grads(
                    std::slice::from_ref(&x),
                    |v| split_heads(&v[0], dims, Some(Rotation { cos: &cos, sin: &sin })),
                    |v| reference(&v[0], dims, Some((&cos, &sin))),
                )?;
            }
            assert_same_values_and_grads(std::slice::from_ref(&x), |v| split_heads(&v[0], dims, None), |v| reference(&v[0], dims, None))?;
        }
        Ok(())
    }

    #[test]
    fn merge_undoes_split_and_has_the_transpose_gradient() -> Result<()> {
        let dims = (2, 5, 3, 8);
        for dtype in [DType::F64, DType::F32] {
            let heads = random(&[2, 3, 5, 8], dtype, 8)?;
            assert_same_values_and_grads(
                &[heads],
                |v| merge_heads(&v[0], dims),
                |v| v[0].transpose(1, 2)?.contiguous()?.reshape((10, 24)),
            )?;
            let x = random(&[2, 5, 24], dtype, 9)?;
            let round_trip = merge_heads(&split_heads(&x, dims, None)?, dims)?;
            assert_eq!(
                round_trip.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?,
                x.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?
            );
        }
        Ok(())
    }
}
