//! Samples and their percentiles, and how numbers are printed: always with a unit.

use std::time::Duration;

/// Latency samples, sorted.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    sorted: Vec<Duration>,
}

impl Samples {
    pub fn new(mut v: Vec<Duration>) -> Samples {
        v.sort();
        Samples { sorted: v }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Nearest-rank percentile; `None` without samples.
    pub fn pct(&self, p: f64) -> Option<Duration> {
        if self.sorted.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        Some(self.sorted[rank.clamp(1, self.sorted.len()) - 1])
    }

    pub fn p50(&self) -> Option<Duration> {
        self.pct(50.0)
    }

    pub fn p99(&self) -> Option<Duration> {
        self.pct(99.0)
    }

    pub fn all(&self) -> &[Duration] {
        &self.sorted
    }

    /// `p50 / p99 (n)` for tables.
    pub fn summary(&self) -> String {
        match (self.p50(), self.p99()) {
            (Some(a), Some(b)) => format!("{} / {}", dur(a), dur(b)),
            _ => "n/a".into(),
        }
    }
}

/// A duration with a unit, three significant digits: `850 µs`, `1.23 ms`, `4.56 s`.
pub fn dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    let (v, unit) = if s >= 1.0 {
        (s, "s")
    } else if s >= 1e-3 {
        (s * 1e3, "ms")
    } else {
        (s * 1e6, "µs")
    };
    format!("{} {unit}", sig3(v))
}

pub fn opt_dur(d: Option<Duration>) -> String {
    d.map(dur).unwrap_or_else(|| "n/a".into())
}

/// Three significant digits, no exponent.
pub fn sig3(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `a / b` as `12.3×`, or `n/a`.
pub fn ratio(a: Option<Duration>, b: Option<Duration>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => Some(a.as_secs_f64() / b.as_secs_f64()),
        _ => None,
    }
}

pub fn fmt_ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{}×", sig3(r)))
        .unwrap_or_else(|| "n/a".into())
}

/// Microseconds as a plain number, for CSV.
pub fn us(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1}", d.as_secs_f64() * 1e6))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = Samples::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(s.p50(), Some(Duration::from_millis(50)));
        assert_eq!(s.p99(), Some(Duration::from_millis(99)));
        assert_eq!(s.pct(100.0), Some(Duration::from_millis(100)));
        let one = Samples::new(vec![Duration::from_micros(7)]);
        assert_eq!(one.p99(), Some(Duration::from_micros(7)));
        assert_eq!(Samples::default().p50(), None);
    }

    #[test]
    fn durations_have_units() {
        assert_eq!(dur(Duration::from_micros(850)), "850 µs");
        assert_eq!(dur(Duration::from_micros(1234)), "1.23 ms");
        assert_eq!(dur(Duration::from_millis(4560)), "4.56 s");
        assert_eq!(fmt_ratio(Some(12.34)), "12.3×");
    }
}
