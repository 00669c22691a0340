//! exp for the kernels: a branch-free polynomial in f32 that the compiler vectorises (libm's
//! expf is a scalar call, and the kernels spend most of their time in it), libm in f64.

/// e^x; in f32 within ~2 ulp of libm's expf, and exactly 0 below e^-87.3 (as libm underflows).
pub(crate) trait FastExp: Copy {
    fn fast_exp(self) -> Self;
}

impl FastExp for f64 {
    #[inline(always)]
    fn fast_exp(self) -> f64 {
        self.exp()
    }
}

impl FastExp for f32 {
    #[inline(always)]
    fn fast_exp(self) -> f32 {
        const LOG2_E: f32 = std::f32::consts::LOG2_E;
        // ln 2 split in two so n·ln2 is subtracted without rounding error in the high part.
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        let x = self.clamp(-87.3, 88.7);
        // x = n·ln2 + r with |r| ≤ ln2/2, then e^x = 2^n · e^r.
        // Round to nearest by adding and subtracting 1.5·2^23 (exact for |v| < 2^22): unlike
        // `round`, which is a libm call without SSE4.1, this vectorises on any x86-64.
        const ROUNDER: f32 = 12_582_912.0;
        let n = (x * LOG2_E + ROUNDER) - ROUNDER;
        let r = x - n * LN2_HI - n * LN2_LO;
        // Taylor series of e^r to degree 7: relative error below 1e-8 on |r| ≤ 0.35.
        let p = 1.0 / 5040.0;
        let p = p * r + 1.0 / 720.0;
        let p = p * r + 1.0 / 120.0;
        let p = p * r + 1.0 / 24.0;
        let p = p * r + 1.0 / 6.0;
        let p = p * r + 0.5;
        let p = p * r + 1.0;
        let p = p * r + 1.0;
        let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
        let underflow = if self < -87.3 { 0.0 } else { 1.0 };
        p * scale * underflow
    }
}

/// Σ e^(x·scale − shift) over `xs`, the exponentials in blocks so they vectorise and the sum
/// still adds in order.
pub(crate) fn sum_exp<T: super::cpu::Real>(xs: &[T], scale: T, shift: T) -> T {
    const BLOCK: usize = 64;
    let mut buf = [T::zero(); BLOCK];
    let mut total = T::zero();
    for chunk in xs.chunks(BLOCK) {
        for (b, &v) in buf.iter_mut().zip(chunk) {
            *b = (v * scale - shift).fast_exp();
        }
        total = buf[..chunk.len()].iter().fold(total, |acc, &v| acc + v);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_exp_is_within_a_few_ulp_of_libm_over_its_range() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, libm) = (x.fast_exp() as f64, x.exp() as f64);
            worst = worst.max(((ours - libm) / libm).abs());
            x += 0.0137;
        }
        assert!(worst < 4.0 * f32::EPSILON as f64, "worst relative error {worst}");
        assert_eq!((-1e9f32).fast_exp(), 0.0);
        assert_eq!((-88.0f32).fast_exp(), 0.0);
        assert_eq!(0f32.fast_exp(), 1.0);
    }

    #[test]
    fn sum_exp_adds_every_element() {
        let xs: Vec<f64> = (0..150).map(|i| i as f64 * 0.01).collect();
        let expected: f64 = xs.iter().map(|v| (v * 2.0 - 1.0).exp()).sum();
        assert!((sum_exp(&xs, 2.0, 1.0) - expected).abs() < 1e-12);
    }
}
