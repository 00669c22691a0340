//! Progress of a training stage: an indicatif bar when stderr is a terminal, one line per step
//! otherwise (logs and CI keep every step).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::learner::grpo_trainer::StepProgress;

pub struct GrpoProgress {
    bar: Option<ProgressBar>,
    /// Optimizer steps the stage plans (each on `batch_groups` problems).
    total: u64,
    /// Problems the stage samples: what trained and dropped groups both use up.
    problems: u64,
    /// Problems already used up when this process took the stage on (a resume).
    from_problems: u64,
    pace: Pace,
}

impl GrpoProgress {
    /// Silent when `enabled` is false; a bar only when stderr is a terminal. The bar counts the
    /// stage's `problems`, which trained and dropped groups both use up; lines count steps.
    pub fn new(total: u64, problems: u64, from_problems: u64, enabled: bool) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(problems), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("grpo [{bar:30}] {pos}/{len} problems {msg} ({elapsed}, eta {eta})") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        GrpoProgress { bar, total: if enabled { total } else { 0 }, problems, from_problems, pace: Pace::start() }
    }

    pub fn step(&self, p: &StepProgress) {
        let rate = p.tokens_so_far as f64 / self.pace.elapsed().as_secs_f64().max(1e-9);
        match &self.bar {
            Some(bar) => {
                bar.set_position(p.problems_done);
                bar.set_message(format!(
                    "reward {:.3} acc {:.1}% {:.0} tok/s staleness ≤{}",
                    p.reward_mean,
                    100.0 * p.accuracy,
                    rate,
                    p.max_staleness
                ));
            }
            None if self.total > 0 => {
                let (done, todo) = (p.problems_done.saturating_sub(self.from_problems), self.problems.saturating_sub(self.from_problems));
                eprintln!("{} ({})", step_line(p, self.total, self.problems, rate), self.pace.note(done as usize, todo as usize));
            }
            None => {}
        }
        tracing::debug!(target: "srlm::train", "{}", step_line(p, self.total, self.problems, rate));
    }

    /// Clears the bar so the stage summary prints on a clean line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Once groups are dropped the stage ends before its planned steps (it runs out of problems),
/// so the line then also counts problems.
fn step_line(p: &StepProgress, total: u64, problems: u64, tokens_per_s: f64) -> String {
    let dropped = if p.dropped_so_far > 0 {
        format!(" (+{} dropped, {}/{problems} problems)", p.dropped_so_far, p.problems_done)
    } else {
        String::new()
    };
    format!(
        "grpo step {:>4}/{total}{dropped} reward {:.3} accuracy {:.1}% loss {:+.4} clip {:.3} staleness ≤{} {:.0} tok/s",
        p.step + 1,
        p.reward_mean,
        100.0 * p.accuracy,
        p.loss,
        p.clip_fraction,
        p.max_staleness,
        tokens_per_s
    )
}

/// Time since long work began and a straight-line estimate of what is left, for the lines it
/// prints without a terminal: an hour of teacher sampling that says only "40/400" leaves the
/// user to time it.
pub struct Pace {
    started: Instant,
    /// The last mark [`Pace::passed_a_mark`] reported (tenths of the way; 11 is the end).
    marked: AtomicUsize,
}

impl Pace {
    pub fn start() -> Self {
        Pace { started: Instant::now(), marked: AtomicUsize::new(0) }
    }

    /// Whether `done` of `total` items passed a tenth-of-the-way mark, or the end, that no
    /// earlier call reported: where long work without a terminal prints a line (teacher
    /// sampling, evaluation, held-out checks). Work finished a batch at a time passes several
    /// marks at once and gets one line, when the batch is done.
    pub fn passed_a_mark(&self, done: usize, total: usize) -> bool {
        let mark = if done >= total { 11 } else { done / total.div_ceil(10).max(1) };
        done > 0 && self.marked.fetch_max(mark, Ordering::Relaxed) < mark
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// `"3m 12s, about 28m 48s left"` once `done` of the `todo` items this process took on
    /// are finished.
    pub fn note(&self, done: usize, todo: usize) -> String {
        pace_note(self.elapsed(), done, todo)
    }
}

fn pace_note(elapsed: Duration, done: usize, todo: usize) -> String {
    let spent = short_duration(elapsed.as_secs_f64());
    if done == 0 || done >= todo {
        return spent;
    }
    let left = elapsed.as_secs_f64() * (todo - done) as f64 / done as f64;
    format!("{spent}, about {} left", short_duration(left))
}

/// 42s, 3m 05s, 1h 02m.
fn short_duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_line_counts_from_one_and_shows_percentages() {
        let p = StepProgress {
            step: 4,
            loss: -0.01234,
            reward_mean: 0.5,
            accuracy: 0.375,
            clip_fraction: 0.02,
            max_staleness: 1,
            tokens_so_far: 1000,
            dropped_so_far: 0,
            problems_done: 5,
        };
        assert_eq!(
            step_line(&p, 150, 150, 250.0),
            "grpo step    5/150 reward 0.500 accuracy 37.5% loss -0.0123 clip 0.020 staleness ≤1 250 tok/s"
        );
        // Under dynamic sampling drops use up problems too: the line counts them once there are any.
        let p = StepProgress { dropped_so_far: 3, problems_done: 13, ..p };
        assert!(step_line(&p, 150, 300, 250.0).starts_with("grpo step    5/150 (+3 dropped, 13/300 problems) reward 0.500"));
    }

    #[test]
    fn the_pace_extrapolates_the_time_per_item_to_the_items_left() {
        // 40 of 400 in 3m 12s: 4.8 s each, 360 left take 28m 48s.
        assert_eq!(pace_note(Duration::from_secs(192), 40, 400), "3m 12s, about 28m 48s left");
        assert_eq!(pace_note(Duration::from_millis(41_600), 1, 3), "42s, about 1m 23s left");
        assert_eq!(pace_note(Duration::from_secs(3725), 5, 10), "1h 02m, about 1h 02m left");
        // Nothing done yet, or all of it: no estimate.
        assert_eq!(pace_note(Duration::from_secs(5), 0, 10), "5s");
        assert_eq!(pace_note(Duration::from_secs(600), 10, 10), "10m 00s");
    }

    #[test]
    fn a_line_every_tenth_of_the_way_and_at_the_end_once_per_mark() {
        // One item at a time: each tenth (rounded up) once, and the end.
        let marks = |total: usize, batch: usize| {
            let pace = Pace::start();
            let dones: Vec<usize> = (0..=total.div_ceil(batch.max(1))).map(|b| (b * batch).min(total)).collect();
            dones.into_iter().filter(|&d| pace.passed_a_mark(d, total)).collect::<Vec<_>>()
        };
        assert_eq!(marks(200, 1), (1..=10).map(|k| 20 * k).collect::<Vec<_>>());
        // 25 items: every 3rd, never at 0, and the last.
        assert_eq!(marks(25, 1), vec![3, 6, 9, 12, 15, 18, 21, 24, 25]);
        assert_eq!(marks(3, 1), vec![1, 2, 3]);
        assert!(marks(0, 1).is_empty());
        // A batch at a time: one line per batch that passed a mark, however many it passed.
        assert_eq!(marks(200, 32), vec![32, 64, 96, 128, 160, 192, 200]);
        assert_eq!(marks(8, 32), vec![8]);
        assert_eq!(marks(200, 16), vec![32, 48, 64, 80, 112, 128, 144, 160, 192, 200]);
    }
}
