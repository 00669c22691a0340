//! Process-wide settings made once at the start of `main`, before any other thread exists, for
//! CPU training speed. Each one yields to the user's own environment setting.

/// candle's own thread pool runs only its element-wise ops here (the matrix products and the
/// training kernels have their own threads); on a few cores its barrier spin-waits cost more
/// than the parallelism gains (measured in BENCHMARKS.md). `CANDLE_NUM_THREADS` set by the user
/// wins.
pub fn candle_elementwise_on_one_thread() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Big freed blocks are kept for reuse up to this many bytes (`alloc_cache`), so a learner step
/// does not page-fault its buffers afresh (BENCHMARKS.md). `SRLM_ALLOC_CACHE_MB` overrides it; 0
/// turns it off.
pub fn keep_freed_blocks() {
    const DEFAULT_MB: usize = 1024;
    let mb = std::env::var("SRLM_ALLOC_CACHE_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_MB);
    crate::alloc_cache::set_capacity(mb << 20);
}
