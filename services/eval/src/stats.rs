//! The statistics of the report: Wilson score intervals for accuracies, McNemar's exact test for
//! two models on the same items, and latency percentiles.

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval for `successes` out of `trials` at `z` (1.96 for 95%).
///
/// Unlike the normal ("Wald") interval it stays inside [0, 1] and is not degenerate at 0% or
/// 100%, which small test sets (the tutorial's has 90 items) hit often. No trials: (0, 1).
pub fn wilson(successes: u64, trials: u64, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// McNemar's exact test: the two-sided binomial p-value for `b` items only the first model got
/// right and `c` only the second did (items both got right or both got wrong say nothing about
/// which is better). Under the null each discordant item is a fair coin:
/// `p = min(1, 2 · P[Binomial(b + c, ½) ≤ min(b, c)])`.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // Summed in log space: 0.5^n underflows f64 beyond n ≈ 1074.
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64;
    let mut terms = Vec::with_capacity(k as usize + 1);
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        terms.push(ln_choose + ln_half_n);
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = max.exp() * terms.iter().map(|t| (t - max).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

/// The `q`-quantile (0 ≤ q ≤ 1) by linear interpolation between closest ranks (numpy's default);
/// `None` for no values.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64))
}

/// The unbiased pass@k estimate for one item with `correct` of `n` samples right:
/// `1 − C(n − c, k) / C(n, k)` (Chen et al., 2021).
pub fn pass_at_k(n: u64, correct: u64, k: u64) -> f64 {
    if k == 0 || n == 0 {
        return 0.0;
    }
    if n - correct < k {
        return 1.0;
    }
    // C(n−c, k)/C(n, k) = Π_{i=n−c+1..n} (1 − k/i)
    let miss: f64 = ((n - correct + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product();
    1.0 - miss
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn wilson_matches_known_intervals() {
        // 38/90 and 52/90 are the tutorial's base and RFT models; values from the closed form
        // evaluated independently in Python.
        let (lo, hi) = wilson(38, 90, Z95);
        assert!(
            close(lo, 0.325_424_06, 1e-7) && close(hi, 0.525_388_14, 1e-7),
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(52, 90, Z95);
        assert!(
            close(lo, 0.474_611_86, 1e-7) && close(hi, 0.674_575_94, 1e-7),
            "{lo} {hi}"
        );
    }

    #[test]
    fn wilson_is_not_degenerate_at_the_edges() {
        let (lo, hi) = wilson(0, 10, Z95);
        assert_eq!(lo, 0.0);
        assert!(close(hi, 0.277_532_80, 1e-7), "{hi}");
        let (lo, hi) = wilson(10, 10, Z95);
        assert!(close(lo, 0.722_467_20, 1e-7), "{lo}");
        assert!(close(hi, 1.0, 1e-12), "{hi}");
        assert_eq!(wilson(0, 0, Z95), (0.0, 1.0));
    }

    #[test]
    fn mcnemar_matches_exact_binomial_tails() {
        // Exact values from Python's fractions: 2·Σ_{i≤k} C(n, i) / 2^n.
        assert!(close(mcnemar_exact(3, 10), 0.092_285_156_25, 1e-12));
        assert!(close(mcnemar_exact(10, 3), 0.092_285_156_25, 1e-12));
        assert!(close(mcnemar_exact(0, 5), 0.0625, 1e-12));
        assert!(close(mcnemar_exact(1, 9), 0.021_484_375, 1e-12));
        assert_eq!(mcnemar_exact(4, 4), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
    }

    #[test]
    fn mcnemar_survives_large_counts() {
        let p = mcnemar_exact(600, 800);
        assert!(p > 0.0 && p < 1e-6, "{p}");
        let p = mcnemar_exact(1000, 1000);
        assert_eq!(p, 1.0);
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 0.5), Some(3.0));
        // numpy.percentile([1, 2, 3, 4, 5], 95) == 4.8
        assert!(close(percentile(&v, 0.95).unwrap(), 4.8, 1e-12));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
    }

    #[test]
    fn pass_at_k_is_unbiased_estimate() {
        assert_eq!(pass_at_k(5, 0, 1), 0.0);
        assert!(close(pass_at_k(5, 2, 1), 0.4, 1e-12));
        // 1 − C(3,2)/C(5,2) = 1 − 3/10
        assert!(close(pass_at_k(5, 2, 2), 0.7, 1e-12));
        assert_eq!(pass_at_k(5, 4, 2), 1.0);
    }
}
