//! Pictures of runs: per-step curves of a `srlm train` run (rewards, accuracy, format
//! compliance, KL, clip fraction, completion length, staleness, loss) and a bar chart of
//! `srlm eval` reports side by side, as PNG files. The font is embedded, so nothing is needed
//! from the system.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use serde_json::Value;

use crate::eval::EvalReport;

pub mod trend;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("{}: nothing to plot (no steps-stage-N.json of a training run, no report.json of an evaluation)", .0.display())]
    Empty(PathBuf),
    #[error("drawing {}: {message}", path.display())]
    Draw { path: PathBuf, message: String },
}

/// One named series of (step, value) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One chart: a title, the y axis' meaning and its series.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub file: String,
    pub title: String,
    pub y: String,
    pub series: Vec<Series>,
}

/// The charts of one `steps-stage-N.json` (stage `stage`); metrics a run did not record
/// (e.g. KL without a reference model) get no chart.
pub fn step_charts(stage: &str, steps: &[Value]) -> Vec<Chart> {
    let field = |key: &str| -> Vec<(f64, f64)> { step_field(steps, key) };
    let length: Vec<(f64, f64)> = steps
        .iter()
        .filter_map(|s| Some((step_number(s), s["tokens"].as_f64()? / s["completions"].as_f64().filter(|&c| c > 0.0)?)))
        .collect();
    let one = |name: &str, points: Vec<(f64, f64)>| vec![Series { name: name.into(), points }];
    let charts = [
        ("reward", "mean reward per completion", reward_series(steps)),
        ("accuracy", "fraction correct", one("accuracy", field("accuracy"))),
        ("format", "format reward (compliance)", rewards_named(steps, &|n| n.starts_with("format"))),
        ("kl", "KL to the reference", one("kl", field("kl"))),
        ("clip", "fraction of tokens clipped", one("clip fraction", field("clip_fraction"))),
        ("length", "tokens per completion", one("mean length", length)),
        ("staleness", "versions behind (max)", one("max staleness", field("max_staleness"))),
        ("loss", "loss", one("loss", field("loss"))),
    ];
    charts
        .into_iter()
        .filter_map(|(file, y, series)| {
            let series: Vec<Series> = series.into_iter().filter(|s| !s.points.is_empty()).collect();
            (!series.is_empty()).then(|| Chart {
                file: format!("{stage}-{file}.png"),
                title: format!("{stage}: {file}"),
                y: y.into(),
                series,
            })
        })
        .collect()
}

/// The reward chart's series: each reward the steps recorded and, under dynamic sampling, the
/// mean over every sampled group (the trained batches hold only groups with differing rewards,
/// so the policy's own reward is that one).
pub fn reward_series(steps: &[Value]) -> Vec<Series> {
    let mut reward = rewards_named(steps, &|_| true);
    if steps.iter().any(|s| s["dropped_uniform_so_far"].as_u64().is_some_and(|n| n > 0)) {
        reward.push(Series { name: "total, all sampled groups".into(), points: step_field(steps, "sampled_reward") });
    }
    reward
}

fn step_number(s: &Value) -> f64 {
    s["step"].as_f64().unwrap_or(0.0)
}

/// `(step, value)` of a numeric field, skipping steps that did not record it.
fn step_field(steps: &[Value], key: &str) -> Vec<(f64, f64)> {
    steps.iter().filter_map(|s| Some((step_number(s), s[key].as_f64()?))).collect()
}

/// One series per reward name `keep` accepts, in the order the steps first name them.
fn rewards_named(steps: &[Value], keep: &dyn Fn(&str) -> bool) -> Vec<Series> {
    let mut names: Vec<String> = Vec::new();
    for s in steps {
        for pair in s["rewards"].as_array().into_iter().flatten() {
            if let Some(name) = pair[0].as_str().filter(|n| keep(n) && !names.iter().any(|x| x == n)) {
                names.push(name.to_string());
            }
        }
    }
    names
        .into_iter()
        .map(|name| {
            let points = steps
                .iter()
                .filter_map(|s| {
                    let pair = s["rewards"].as_array()?.iter().find(|p| p[0].as_str() == Some(&name))?;
                    Some((step_number(s), pair[1].as_f64()?))
                })
                .collect();
            Series { name, points }
        })
        .collect()
}

/// What `plot_dirs` drew, and the training stages it read (for figures printed beside them).
pub struct Plotted {
    pub files: Vec<PathBuf>,
    /// `(directory, stage name, steps)` of every training stage, in the order read.
    pub stages: Vec<(PathBuf, String, Vec<Value>)>,
}

/// Draws every chart of the run and eval directories in `dirs` into `out`. Training runs give
/// one PNG per stage and metric; all eval reports together give `eval.png`, one bar per report
/// and benchmark.
pub fn plot_dirs(dirs: &[PathBuf], out: &Path) -> Result<Plotted, PlotError> {
    let mut charts = Vec::new();
    let mut reports = Vec::new();
    let mut stages = Vec::new();
    for dir in dirs {
        let before = (charts.len(), reports.len());
        for (stage, steps) in read_steps(dir)? {
            charts.extend(step_charts(&stage, &steps));
            stages.push((dir.clone(), stage, steps));
        }
        let report = dir.join("report.json");
        if report.is_file() {
            let text = std::fs::read_to_string(&report).map_err(|e| read_error(&report, e))?;
            let parsed: EvalReport = serde_json::from_str(&text).map_err(|e| read_error(&report, e))?;
            let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
            reports.push((name, parsed));
        }
        if (charts.len(), reports.len()) == before {
            return Err(PlotError::Empty(dir.clone()));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| read_error(out, e))?;
    let mut written = Vec::new();
    for chart in &charts {
        let path = out.join(&chart.file);
        draw_lines(chart, &path)?;
        written.push(path);
    }
    if !reports.is_empty() {
        let path = out.join("eval.png");
        draw_bars(&reports, &path)?;
        written.push(path);
    }
    Ok(Plotted { files: written, stages })
}

/// `(stage name, steps)` of every `steps-stage-N.json` in `dir`, by stage number.
fn read_steps(dir: &Path) -> Result<Vec<(String, Vec<Value>)>, PlotError> {
    let entries = std::fs::read_dir(dir).map_err(|e| read_error(dir, e))?;
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let n = p.file_name()?.to_str()?.strip_prefix("steps-stage-")?.strip_suffix(".json")?.parse().ok()?;
            Some((n, p))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(n, path)| {
            let text = std::fs::read_to_string(&path).map_err(|e| read_error(&path, e))?;
            let steps: Vec<Value> = serde_json::from_str(&text).map_err(|e| read_error(&path, e))?;
            Ok((format!("stage-{n}"), steps))
        })
        .collect()
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError::Read { path: path.to_path_buf(), message: e.to_string() }
}

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 520);

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font parses; a failure here would be a broken build, reported on drawing.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

fn draw_error(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw { path: path.to_path_buf(), message: e.to_string() }
}

/// The range of `values`, widened a little (and around a constant) so lines stay off the frame.
fn padded_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { lo.abs().max(1.0) * 0.05 };
    (lo - pad)..(hi + pad)
}

fn draw_lines(chart: &Chart, path: &Path) -> Result<(), PlotError> {
    register_font();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
    let points = || chart.series.iter().flat_map(|s| s.points.iter());
    let x = padded_range(points().map(|p| p.0));
    let y = padded_range(points().map(|p| p.1));
    let mut c = ChartBuilder::on(&root)
        .caption(&chart.title, (FONT, 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(|e| draw_error(path, e))?;
    c.configure_mesh().x_desc("step").y_desc(&chart.y).draw().map_err(|e| draw_error(path, e))?;
    for (i, s) in chart.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        c.draw_series(LineSeries::new(s.points.iter().copied().filter(|p| p.1.is_finite()), color.stroke_width(2)))
            .map_err(|e| draw_error(path, e))?
            .label(&s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| draw_error(path, e))?;
    root.present().map_err(|e| draw_error(path, e))
}

/// Accuracy per benchmark, one bar per report (in the order given), with the 95% interval.
fn draw_bars(reports: &[(String, EvalReport)], path: &Path) -> Result<(), PlotError> {
    register_font();
    let mut benchmarks: Vec<String> = Vec::new();
    for (_, r) in reports {
        for b in &r.benchmarks {
            let name = b.benchmark.name().to_string();
            if !benchmarks.contains(&name) {
                benchmarks.push(name);
            }
        }
    }
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
    let slots = benchmarks.len() * (reports.len() + 1);
    let mut c = ChartBuilder::on(&root)
        .caption("accuracy per benchmark (pass@1, 95% interval)", (FONT, 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..slots as f64, 0f64..100f64)
        .map_err(|e| draw_error(path, e))?;
    let per = reports.len() + 1;
    let names = benchmarks.clone();
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(slots * 2)
        .x_label_formatter(&move |x| {
            // One label at the middle of each benchmark's bars.
            let slot = (x * 2.0).round() / 2.0;
            let (group, offset) = ((slot / per as f64).floor() as usize, slot % per as f64);
            match names.get(group) {
                Some(n) if (offset - (per - 1) as f64 / 2.0).abs() < 0.26 => n.clone(),
                _ => String::new(),
            }
        })
        .y_desc("accuracy, %")
        .draw()
        .map_err(|e| draw_error(path, e))?;
    for (i, (name, report)) in reports.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let bars: Vec<(usize, f64, [f64; 2])> = report
            .benchmarks
            .iter()
            .filter_map(|b| Some((benchmarks.iter().position(|n| n == b.benchmark.name())?, 100.0 * b.accuracy, b.ci95.map(|v| 100.0 * v))))
            .collect();
        let x0 = |g: usize| (g * per + i) as f64;
        c.draw_series(bars.iter().map(|&(g, acc, _)| Rectangle::new([(x0(g) + 0.1, 0.0), (x0(g) + 0.9, acc)], color.filled())))
            .map_err(|e| draw_error(path, e))?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
        c.draw_series(
            bars.iter().map(|&(g, _, [lo, hi])| PathElement::new(vec![(x0(g) + 0.5, lo), (x0(g) + 0.5, hi)], BLACK.stroke_width(2))),
        )
        .map_err(|e| draw_error(path, e))?;
        c.draw_series(bars.iter().map(|&(g, acc, _)| Text::new(format!("{acc:.1}"), (x0(g) + 0.15, acc + 2.0), (FONT, 14))))
            .map_err(|e| draw_error(path, e))?;
    }
    c.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw().map_err(|e| draw_error(path, e))?;
    root.present().map_err(|e| draw_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps() -> Vec<Value> {
        (1..=5)
            .map(|i| {
                json!({"step": i, "loss": 0.1 * i as f64, "kl": null, "clip_fraction": 0.01, "accuracy": 0.2 * i as f64,
                       "rewards": [["accuracy", 0.2 * i as f64], ["format", 0.9], ["total", 0.5]],
                       "completions": 16, "tokens": 320 + 16 * i, "max_staleness": i % 2})
            })
            .collect()
    }

    #[test]
    fn each_recorded_metric_gets_a_chart_with_the_recorded_values() {
        let charts = step_charts("stage-1", &steps());
        let files: Vec<&str> = charts.iter().map(|c| c.file.as_str()).collect();
        // No KL was recorded (no reference model): no KL chart.
        assert_eq!(
            files,
            [
                "stage-1-reward.png",
                "stage-1-accuracy.png",
                "stage-1-format.png",
                "stage-1-clip.png",
                "stage-1-length.png",
                "stage-1-staleness.png",
                "stage-1-loss.png"
            ]
        );
        let reward: Vec<&str> = charts[0].series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(reward, ["accuracy", "format", "total"]);
        assert_eq!(charts[2].series.len(), 1);
        // Mean completion length: tokens / completions.
        assert_eq!(charts[4].series[0].points[0], (1.0, 336.0 / 16.0));
        assert_eq!(charts[5].series[0].points[..2], [(1.0, 1.0), (2.0, 0.0)]);
    }

    #[test]
    fn the_reward_chart_adds_the_all_groups_mean_only_when_groups_were_dropped() {
        let names = |steps: &[Value]| -> Vec<String> { step_charts("s", steps)[0].series.iter().map(|s| s.name.clone()).collect() };
        let mut with_drops = steps();
        for (i, s) in with_drops.iter_mut().enumerate() {
            s["sampled_reward"] = json!(0.1 * i as f64);
            s["dropped_uniform_so_far"] = json!(i);
        }
        assert_eq!(names(&with_drops), ["accuracy", "format", "total", "total, all sampled groups"]);
        assert_eq!(step_charts("s", &with_drops)[0].series[3].points[2], (3.0, 0.2));
        for s in with_drops.iter_mut() {
            s["dropped_uniform_so_far"] = json!(0);
        }
        assert_eq!(names(&with_drops), ["accuracy", "format", "total"]);
    }

    #[test]
    fn ranges_are_padded_and_survive_constants_and_nothing() {
        let close = |r: std::ops::Range<f64>, lo: f64, hi: f64| (r.start - lo).abs() < 1e-12 && (r.end - hi).abs() < 1e-12;
        assert!(close(padded_range([0.0, 10.0].into_iter()), -0.5, 10.5));
        assert!(close(padded_range([2.0, 2.0, f64::NAN].into_iter()), 1.9, 2.1));
        assert!(close(padded_range([f64::NAN].into_iter()), 0.0, 1.0));
    }
}
