//! Micro-batches computed side by side, one per core, instead of one at a time on all cores.
//!
//! A learner step on a small model is a chain of modest matrix products and many element-wise
//! passes (norms, activations, candle's gradient sums). Splitting each product across cores
//! leaves the element-wise passes on one core and costs a synchronisation per product; giving
//! each core a whole micro-batch keeps both busy for all of it (BENCHMARKS.md). It costs memory: `lanes` micro-batches' activations and
//! gradients are alive at once.
//!
//! Results come back in micro-batch order and each lane computes exactly what the sequential
//! loop would, so accumulating them in order gives the same update.

use rayon::{ThreadPool, ThreadPoolBuilder};

pub struct Lanes {
    /// One single-threaded pool per lane; empty for one lane, which runs on the caller's
    /// thread with the global pool's parallelism as before.
    pools: Vec<ThreadPool>,
}

impl Lanes {
    /// `lanes` micro-batches at a time (configs refuse 0; here it means one at a time).
    pub fn new(lanes: usize) -> candle_core::Result<Self> {
        let pools = if lanes <= 1 {
            Vec::new()
        } else {
            (0..lanes)
                .map(|i| ThreadPoolBuilder::new().num_threads(1).thread_name(move |_| format!("srlm-lane-{i}")).build())
                .collect::<Result<_, _>>()
                .map_err(|e| candle_core::Error::Msg(format!("cannot start {lanes} learner lane threads: {e}")))?
        };
        Ok(Lanes { pools })
    }

    pub fn count(&self) -> usize {
        self.pools.len().max(1)
    }

    /// `work(index, item)` for every item, `count()` at a time, each result handed to `fold` in
    /// item order; stops (with no more work started) at the first `fold` that returns false.
    pub fn fold_in_order<T: Sync, R: Send, E: Send>(
        &self,
        items: &[T],
        work: impl Fn(usize, &T) -> Result<R, E> + Sync,
        mut fold: impl FnMut(R) -> Result<bool, E>,
    ) -> Result<(), E> {
        let n = self.count();
        for (c, group) in items.chunks(n).enumerate() {
            for result in self.map(c * n, group, &work) {
                if !fold(result?)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// `f(first + i, items[i])` for up to `count()` items at once, results in item order.
    fn map<T: Sync, R: Send>(&self, first: usize, items: &[T], f: &(impl Fn(usize, &T) -> R + Sync)) -> Vec<R> {
        if self.pools.is_empty() || items.len() <= 1 {
            return items.iter().enumerate().map(|(i, item)| f(first + i, item)).collect();
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = items
                .iter()
                .zip(&self.pools)
                .enumerate()
                .map(|(i, (item, pool))| scope.spawn(move || pool.install(|| f(first + i, item))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
        })
    }
}
