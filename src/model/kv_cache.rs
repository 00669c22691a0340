//! KV cache for decoding: one preallocated (b, kv_heads, capacity, head_dim) buffer pair per layer.
//!
//! The cache is a value the caller owns and passes to `CausalLm::forward`, so a group can prefill
//! one prompt, `expand` the cache to G rows and `retain` only the rows still generating.

use candle_core::{Result, Tensor};

#[derive(Clone)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    /// Tokens stored per row (the same for every row and layer).
    len: usize,
}

#[derive(Clone)]
struct LayerKv {
    k: Tensor,
    v: Tensor,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        KvCache { layers: vec![None; num_layers], len: 0 }
    }

    /// Tokens cached so far: the position of the next token.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows in the cache (0 before the first forward).
    pub fn batch_size(&self) -> usize {
        self.layers.iter().flatten().next().map_or(0, |l| l.k.dims()[0])
    }

    /// Appends `k`, `v` (b, kvh, t, hd) to `layer` and returns all cached keys and values.
    /// The first layer's append advances `len`; callers append to every layer once per forward.
    pub(crate) fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dims()[2];
        let start = self.len;
        let slot = &mut self.layers[layer];
        let entry = match slot.take() {
            Some(entry) => grow(entry, start + t)?,
            None => {
                let (b, kvh, _, hd) = k.dims4()?;
                let cap = capacity(start + t);
                let shape = (b, kvh, cap, hd);
                LayerKv { k: Tensor::zeros(shape, k.dtype(), k.device())?, v: Tensor::zeros(shape, v.dtype(), v.device())? }
            }
        };
        entry.k.slice_set(&k.contiguous()?, 2, start)?;
        entry.v.slice_set(&v.contiguous()?, 2, start)?;
        let keys = entry.k.narrow(2, 0, start + t)?;
        let values = entry.v.narrow(2, 0, start + t)?;
        *slot = Some(entry);
        if layer + 1 == self.layers.len() {
            self.len += t;
        }
        Ok((keys, values))
    }

    /// Repeats a single-row cache `n` times: the prompt is prefilled once, then shared by the group.
    pub fn expand(&self, n: usize) -> Result<KvCache> {
        self.map_rows(|t| {
            let b = t.dims()[0];
            if b != 1 {
                candle_core::bail!("expand needs a single-row cache, this one has {b} rows");
            }
            t.repeat((n, 1, 1, 1))
        })
    }

    /// Keeps only the given rows, in that order: finished sequences stop costing compute.
    pub fn retain(&self, rows: &[u32]) -> Result<KvCache> {
        self.map_rows(|t| {
            let idx = Tensor::new(rows, t.device())?;
            t.index_select(&idx, 0)
        })
    }

    /// Puts `n` empty (zero) positions before every row's tokens: rows joining a longer batch are
    /// left-padded to its length (the padding is masked as keys).
    pub fn pad_left(&self, n: usize) -> Result<KvCache> {
        if n == 0 {
            return Ok(self.clone());
        }
        let len = self.len;
        let out = self.map_rows(|t| placed(t, 0, len, n))?;
        Ok(KvCache { len: len + n, ..out })
    }

    /// Drops the first `n` positions of every row (padding no row needs any more).
    pub fn trim_left(&self, n: usize) -> Result<KvCache> {
        if n == 0 {
            return Ok(self.clone());
        }
        if n > self.len {
            candle_core::bail!("cannot trim {n} positions from a cache of {}", self.len);
        }
        let len = self.len - n;
        let out = self.map_rows(|t| placed(t, n, len, 0))?;
        Ok(KvCache { len, ..out })
    }

    /// `self`'s rows, then `other`'s: two caches of the same length as one batch.
    pub fn concat_rows(&self, other: &KvCache) -> Result<KvCache> {
        if self.len != other.len || self.layers.len() != other.layers.len() {
            candle_core::bail!("cannot join caches of {} and {} positions", self.len, other.len);
        }
        let len = self.len;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (a, b) in self.layers.iter().zip(&other.layers) {
            layers.push(match (a, b) {
                (Some(a), Some(b)) => {
                    let join = |x: &Tensor, y: &Tensor| placed(&Tensor::cat(&[x.narrow(2, 0, len)?, y.narrow(2, 0, len)?], 0)?, 0, len, 0);
                    Some(LayerKv { k: join(&a.k, &b.k)?, v: join(&a.v, &b.v)? })
                }
                (None, None) => None,
                _ => candle_core::bail!("cannot join a filled cache with an empty one"),
            });
        }
        Ok(KvCache { layers, len })
    }

    fn map_rows(&self, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<KvCache> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            layers.push(match l {
                Some(l) => Some(LayerKv { k: f(&l.k)?, v: f(&l.v)? }),
                None => None,
            });
        }
        Ok(KvCache { layers, len: self.len })
    }
}

/// Buffer positions for `needed` tokens: a power of two, at least 16, so appends rarely copy.
fn capacity(needed: usize) -> usize {
    needed.next_power_of_two().max(16)
}

/// A fresh zero buffer holding positions `from..from + len` of `t` (b, kvh, T, hd) at `at..`,
/// with room to append after them.
fn placed(t: &Tensor, from: usize, len: usize, at: usize) -> Result<Tensor> {
    let (b, kvh, _, hd) = t.dims4()?;
    let buf = Tensor::zeros((b, kvh, capacity(at + len), hd), t.dtype(), t.device())?;
    buf.slice_set(&t.narrow(2, from, len)?.contiguous()?, 2, at)?;
    Ok(buf)
}

/// Doubles the buffers when `needed` positions do not fit.
fn grow(entry: LayerKv, needed: usize) -> Result<LayerKv> {
    let cap = entry.k.dims()[2];
    if needed <= cap {
        return Ok(entry);
    }
    let new_cap = needed.next_power_of_two();
    let widen = |t: &Tensor| -> Result<Tensor> {
        let (b, kvh, _, hd) = t.dims4()?;
        let bigger = Tensor::zeros((b, kvh, new_cap, hd), t.dtype(), t.device())?;
        bigger.slice_set(t, 2, 0)?;
        Ok(bigger)
    };
    Ok(LayerKv { k: widen(&entry.k)?, v: widen(&entry.v)? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn appends_grow_expand_and_retain() {
        let dev = Device::Cpu;
        let mut cache = KvCache::new(1);
        let chunk = |start: f32, t: usize| Tensor::arange(start, start + t as f32, &dev).unwrap().reshape((1, 1, t, 1)).unwrap();
        cache.append(0, &chunk(0.0, 10), &chunk(0.0, 10)).unwrap();
        // 10 + 9 crosses the initial capacity of 16.
        let (k, _) = cache.append(0, &chunk(10.0, 9), &chunk(10.0, 9)).unwrap();
        assert_eq!(cache.len(), 19);
        let got: Vec<f32> = k.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got, (0..19).map(|i| i as f32).collect::<Vec<_>>());

        let mut group = cache.expand(3).unwrap();
        assert_eq!(group.batch_size(), 3);
        let step = Tensor::new(&[100f32, 200.0, 300.0], &dev).unwrap().reshape((3, 1, 1, 1)).unwrap();
        group.append(0, &step, &step).unwrap();
        let kept = group.retain(&[2, 0]).unwrap();
        let k = kept.layers[0].as_ref().unwrap().k.narrow(2, 0, 20).unwrap();
        let last: Vec<f32> = k.narrow(2, 19, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(last, vec![300.0, 100.0]);
        assert_eq!(k.dtype(), DType::F32);
    }

    fn keys(cache: &KvCache) -> Vec<Vec<f32>> {
        let k = cache.layers[0].as_ref().unwrap().k.narrow(2, 0, cache.len()).unwrap();
        k.squeeze(3).unwrap().squeeze(1).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn rows_join_after_left_padding_and_padding_trims_away() {
        let dev = Device::Cpu;
        let filled = |values: &[f32], rows: usize| {
            let mut c = KvCache::new(1);
            let t = Tensor::new(values, &dev).unwrap().reshape((1, 1, values.len(), 1)).unwrap();
            c.append(0, &t, &t).unwrap();
            c.expand(rows).unwrap()
        };
        let long = filled(&[1.0, 2.0, 3.0, 4.0], 1);
        let short = filled(&[7.0, 8.0], 2).pad_left(2).unwrap();
        assert_eq!(short.len(), 4);
        let joined = long.concat_rows(&short).unwrap();
        assert_eq!(joined.batch_size(), 3);
        assert_eq!(keys(&joined), vec![vec![1.0, 2.0, 3.0, 4.0], vec![0.0, 0.0, 7.0, 8.0], vec![0.0, 0.0, 7.0, 8.0]]);
        // Appends still land at the end of every row.
        let mut grown = joined.retain(&[1, 2]).unwrap();
        let step = Tensor::new(&[9f32, 10.0], &dev).unwrap().reshape((2, 1, 1, 1)).unwrap();
        grown.append(0, &step, &step).unwrap();
        let trimmed = grown.trim_left(2).unwrap();
        assert_eq!(keys(&trimmed), vec![vec![7.0, 8.0, 9.0], vec![7.0, 8.0, 10.0]]);
        assert!(long.concat_rows(&filled(&[1.0], 1)).is_err());
        assert!(trimmed.trim_left(4).is_err());
    }
}
