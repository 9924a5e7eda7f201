//! Order statistics of a configuration's runs. Medians, because one run disturbed by
//! another job on the machine should not move the figure.

#[derive(Clone, Copy, Debug)]
pub(crate) struct Summary {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) q1: f64,
    pub(crate) q3: f64,
}

/// `None` for no samples.
pub(crate) fn summarize(samples: &[f64]) -> Option<Summary> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let (&min, &max) = (sorted.first()?, sorted.last()?);
    Some(Summary {
        median: quantile(&sorted, 0.5),
        min,
        max,
        q1: quantile(&sorted, 0.25),
        q3: quantile(&sorted, 0.75),
    })
}

/// Linear interpolation between closest ranks (sorted input).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

#[cfg(test)]
mod tests {
    use super::summarize;

    #[test]
    fn median_and_quartiles() {
        let s = summarize(&[5.0, 1.0, 3.0, 2.0, 4.0]).expect("samples");
        assert!((s.median - 3.0).abs() < 1e-9);
        assert!((s.q1 - 2.0).abs() < 1e-9 && (s.q3 - 4.0).abs() < 1e-9);
        assert!((s.min - 1.0).abs() < 1e-9 && (s.max - 5.0).abs() < 1e-9);
        let even = summarize(&[1.0, 2.0, 3.0, 4.0]).expect("samples");
        assert!((even.median - 2.5).abs() < 1e-9);
        assert!(summarize(&[]).is_none());
    }
}
