//! The Wilson score interval: a confidence interval for a success rate that stays inside [0, 1]
//! and behaves at 0 and n successes, unlike the normal approximation.

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Wilson interval of `successes` out of `n` trials; (0, 1) when n = 0.
/// `successes` may be fractional (pass@1 averaged over k samples counts each sample).
pub fn wilson_interval(successes: f64, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = (successes / n).clamp(0.0, 1.0);
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: (f64, f64), want: (f64, f64)) {
        assert!((got.0 - want.0).abs() < 5e-5 && (got.1 - want.1).abs() < 5e-5, "{got:?} vs {want:?}");
    }

    #[test]
    fn matches_hand_computed_intervals() {
        // 8/10, z = 1.96: centre = (0.8 + 0.19208) / 1.38416 = 0.716738,
        // half = 1.96 / 1.38416 · sqrt(0.016 + 0.009604) = 0.226581 → (0.490157, 0.943319).
        close(wilson_interval(8.0, 10, 1.96), (0.490_157, 0.943_319));
        // 0/10: centre = 0.19208 / 1.38416 = 0.138770 = half → (0, 0.277540).
        close(wilson_interval(0.0, 10, 1.96), (0.0, 0.277_540));
        // 10/10 mirrors 0/10.
        close(wilson_interval(10.0, 10, 1.96), (0.722_460, 1.0));
        // 50/100, z = 1.96: centre 0.5, half = 1.96/1.038416 · sqrt(0.0025 + 0.00009604) = 0.096170.
        close(wilson_interval(50.0, 100, 1.96), (0.403_830, 0.596_170));
    }

    #[test]
    fn empty_and_bounds() {
        assert_eq!(wilson_interval(0.0, 0, Z95), (0.0, 1.0));
        let (lo, hi) = wilson_interval(1.0, 1, Z95);
        assert!(lo > 0.0 && lo < 1.0 && hi == 1.0);
    }
}
