//! `srlm bench matmul`: GFLOP/s of the model's matrix products on the learner's and the
//! decoder's shapes, candle's gemm beside the system BLAS (when built with `--features blas`).
//! scripts/bench_matmul.py measures PyTorch on the same list; scripts/bench_matmul.sh runs both.

use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use serde_json::json;
use srlm::model::matmul::{matmul, uses_blas};

type Matmul = fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>;

#[derive(Args)]
pub struct MatmulBench {
    /// Products as M×K×N (M rows of activations, K inputs, N outputs), comma-separated.
    #[arg(long, default_value = "3200x896x896,3200x896x4864,3200x4864x896,16x896x896,16x896x151936")]
    shapes: String,
    /// Operand layouts to time for each shape: nt = forward x·Wᵀ, nn = input gradient g·W (and
    /// the inference model's pre-transposed weights), tn = weight gradient gᵀ·x.
    #[arg(long, default_value = "nt,nn,tn")]
    layouts: String,
    /// Timed repetitions after one warm-up; the best is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

pub fn run(b: MatmulBench) -> Result<()> {
    let dev = Device::Cpu;
    for shape in b.shapes.split(',') {
        let dims: Vec<usize> = shape.split('x').map(str::parse).collect::<Result<_, _>>()?;
        let [m, k, n] = dims[..] else { bail!("shape '{shape}' is not M×K×N") };
        for layout in b.layouts.split(',') {
            let (lhs, rhs) = operands(layout, m, k, n, &dev)?;
            let mut impls: Vec<(&str, Matmul)> = vec![("candle-gemm", |a, b| a.matmul(b))];
            if uses_blas(&lhs, &rhs) {
                impls.push(("blas", matmul));
            }
            for (name, f) in impls {
                let (seconds, cpu_seconds) = best_of(b.runs, || f(&lhs, &rhs).map(drop))?;
                let gflop = 2.0 * (m * k * n) as f64 / 1e9;
                let gflops = gflop / seconds;
                println!(
                    "{}",
                    json!({"impl": name, "what": "matmul", "dtype": "f32", "shape": shape, "layout": layout,
                           "seconds": seconds, "gflops": (gflops * 10.0).round() / 10.0,
                           "gflop_per_cpu_s": (gflop / cpu_seconds * 10.0).round() / 10.0})
                );
            }
        }
    }
    Ok(())
}

/// Operands whose product is (M, N) with inner dim K, in the named memory layout.
fn operands(layout: &str, m: usize, k: usize, n: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let r = |shape: (usize, usize)| Tensor::randn(0f32, 1.0, shape, dev);
    Ok(match layout {
        "nt" => (r((m, k))?, r((n, k))?.t()?),
        "nn" => (r((m, k))?, r((k, n))?),
        "tn" => (r((k, m))?.t()?, r((k, n))?),
        other => bail!("layout '{other}' is not one of nt, nn, tn"),
    })
}

/// Best wall time of `runs` after a warm-up, and the mean CPU time (all threads) of a run: on a
/// machine shared with other jobs the CPU time says more about the kernel than the wall time.
fn best_of(runs: usize, mut f: impl FnMut() -> candle_core::Result<()>) -> Result<(f64, f64)> {
    f()?;
    let runs = runs.max(1);
    let mut best = f64::INFINITY;
    let cpu_start = super::bench::process_cpu_seconds()?;
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok((best, (super::bench::process_cpu_seconds()? - cpu_start) / runs as f64))
}
