//! What a generation batch will allocate (KV cache and logits), checked against the memory the
//! machine has before anything is allocated: an impossible `--n` is refused with the estimate
//! instead of aborting the process on a failed allocation.

use candle_core::{DType, Device};

use crate::model::ModelConfig;

/// The KV cache of `rows` sequences of `positions` tokens each, plus one f32 logits row per
/// sequence (the sampler's working set), in bytes.
pub fn generation_bytes(cfg: &ModelConfig, dtype: DType, rows: usize, positions: usize) -> u128 {
    let per_position = 2 * cfg.num_layers as u128 * cfg.num_kv_heads as u128 * cfg.head_dim as u128 * dtype.size_in_bytes() as u128;
    let kv = rows as u128 * positions as u128 * per_position;
    kv + rows as u128 * cfg.vocab_size as u128 * 4
}

#[derive(Debug, thiserror::Error)]
#[error("{rows} rows of up to {positions} tokens need about {} for the KV cache and logits, and {} of memory is available", human(*need), human(*available))]
pub struct TooLarge {
    pub rows: usize,
    pub positions: usize,
    pub need: u128,
    pub available: u128,
}

/// Fails when `rows` × `positions` will not fit in the memory available now. Only the CPU's
/// memory is known (Linux's MemAvailable); elsewhere nothing is refused.
pub fn check_fits(cfg: &ModelConfig, device: &Device, dtype: DType, rows: usize, positions: usize) -> Result<(), TooLarge> {
    let available = match device {
        Device::Cpu => available_host_bytes(),
        _ => None,
    };
    let need = generation_bytes(cfg, dtype, rows, positions);
    match available {
        Some(available) if need > available => Err(TooLarge { rows, positions, need, available }),
        _ => Ok(()),
    }
}

/// MemAvailable of /proc/meminfo, in bytes; None where there is no such file.
fn available_host_bytes() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    mem_available(&text)
}

fn mem_available(meminfo: &str) -> Option<u128> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `bytes` in decimal units with one decimal ("7.6 GB").
pub(crate) fn human(bytes: u128) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{char_vocab_size, tiny_qwen2_config};

    #[test]
    fn the_estimate_counts_every_layer_head_and_position() {
        let cfg = tiny_qwen2_config(char_vocab_size());
        let one = generation_bytes(&cfg, DType::F32, 1, 1);
        let kv = (2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * 4) as u128;
        assert_eq!(one, kv + cfg.vocab_size as u128 * 4);
        assert_eq!(generation_bytes(&cfg, DType::F32, 10, 100), 10 * (100 * kv + cfg.vocab_size as u128 * 4));
        assert_eq!(generation_bytes(&cfg, DType::BF16, 1, 1) - cfg.vocab_size as u128 * 4, kv / 2);
    }

    #[test]
    fn a_hundred_million_rows_do_not_fit_and_say_how_much_they_need() {
        let cfg = tiny_qwen2_config(char_vocab_size());
        let err = check_fits(&cfg, &Device::Cpu, DType::F32, 100_000_000, 300).unwrap_err();
        assert!(err.to_string().starts_with("100000000 rows of up to 300 tokens need about "), "{err}");
        assert!(err.to_string().contains(" TB "), "{err}");
        check_fits(&cfg, &Device::Cpu, DType::F32, 4, 300).unwrap();
    }

    #[test]
    fn mem_available_is_read_in_kib() {
        let meminfo = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(mem_available(meminfo), Some(8_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(human(2_400_000_000_000), "2.4 TB");
    }
}
