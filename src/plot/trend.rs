//! The figure behind a reward curve: each reward's mean over the first and the last `window`
//! steps of a stage, and the change between them (how a run's learning is judged at a glance);
//! the loss's for a stage without rewards.

use serde_json::Value;

use super::{reward_series, step_field, Series};

#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub name: String,
    pub first: f64,
    pub last: f64,
    /// Steps averaged at each end: `window`, or all of them when the stage is shorter.
    pub window: usize,
    /// Steps with a value; the two windows overlap when this is under 2 × `window`.
    pub steps: usize,
}

impl Trend {
    pub fn change(&self) -> f64 {
        self.last - self.first
    }
}

/// One trend per series of the stage's reward chart (`reward_series`).
pub fn reward_trends(steps: &[Value], window: usize) -> Vec<Trend> {
    reward_series(steps).iter().filter_map(|s| trend(s, window)).collect()
}

/// What `srlm plot` prints for a stage, and what it measures: its rewards' trends, or where it
/// recorded no reward (an SFT or KD stage) its loss's.
pub fn stage_trends(steps: &[Value], window: usize) -> (&'static str, Vec<Trend>) {
    let rewards = reward_trends(steps, window);
    if !rewards.is_empty() {
        return ("reward", rewards);
    }
    let loss = Series { name: "loss".into(), points: step_field(steps, "loss") };
    ("loss", trend(&loss, window).into_iter().collect())
}

/// Means of the first and last `window` finite values of `series`; None without any.
pub fn trend(series: &Series, window: usize) -> Option<Trend> {
    let values: Vec<f64> = series.points.iter().map(|p| p.1).filter(|v| v.is_finite()).collect();
    let w = window.min(values.len());
    if w == 0 {
        return None;
    }
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (first, last) = (mean(&values[..w]), mean(&values[values.len() - w..]));
    Some(Trend { name: series.name.clone(), first, last, window: w, steps: values.len() })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn series(values: &[f64]) -> Series {
        Series { name: "total".into(), points: values.iter().enumerate().map(|(i, v)| (i as f64 + 1.0, *v)).collect() }
    }

    #[test]
    fn means_of_each_end_by_hand() {
        let t = trend(&series(&[0.2, 0.4, 0.6, 0.8, 1.0]), 2).unwrap();
        assert!((t.first - 0.3).abs() < 1e-12 && (t.last - 0.9).abs() < 1e-12, "{t:?}");
        assert!((t.change() - 0.6).abs() < 1e-12);
        assert_eq!((t.window, t.steps), (2, 5));
    }

    #[test]
    fn a_stage_shorter_than_the_window_compares_it_with_itself_and_gaps_are_skipped() {
        let t = trend(&series(&[1.0, f64::NAN, 3.0]), 10).unwrap();
        assert_eq!((t.first, t.last, t.change(), t.window, t.steps), (2.0, 2.0, 0.0, 2, 2));
        assert_eq!(trend(&series(&[]), 10), None);
        assert_eq!(trend(&series(&[1.0]), 0), None);
    }

    #[test]
    fn every_reward_of_the_steps_gets_a_trend_including_the_all_groups_mean() {
        let steps: Vec<Value> = (1..=4)
            .map(|i| {
                json!({"step": i, "rewards": [["accuracy", 0.25 * i as f64], ["total", 1.0]],
                       "sampled_reward": 0.5 * i as f64, "dropped_uniform_so_far": 1})
            })
            .collect();
        let trends = reward_trends(&steps, 1);
        let got: Vec<(&str, f64, f64)> = trends.iter().map(|t| (t.name.as_str(), t.first, t.last)).collect();
        assert_eq!(got, [("accuracy", 0.25, 1.0), ("total", 1.0, 1.0), ("total, all sampled groups", 0.5, 2.0)]);
    }

    #[test]
    fn a_stage_without_rewards_is_judged_by_its_loss() {
        let steps: Vec<Value> = [4.0, 3.0, 2.5, 1.5].iter().enumerate().map(|(i, l)| json!({"step": i + 1, "loss": l})).collect();
        let (what, trends) = stage_trends(&steps, 2);
        assert_eq!(what, "loss");
        let t = &trends[0];
        assert_eq!((t.name.as_str(), t.first, t.last, t.change()), ("loss", 3.5, 2.0, -1.5));
        let with_rewards: Vec<Value> = (1..=2).map(|i| json!({"step": i, "loss": 1.0, "rewards": [["total", 0.5]]})).collect();
        assert_eq!(stage_trends(&with_rewards, 2).0, "reward");
    }
}
