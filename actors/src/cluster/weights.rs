//! Weights over the wire: a published version encoded once into a blob, served in chunks below
//! the frame limit with a CRC-32 of the whole; the worker reassembles and checks it.

use std::sync::Arc;

use crate::cluster::wire::WeightChunk;
use crate::messages::PolicyVersion;

/// Turns weights into bytes on the learner node (an encoded checkpoint, for example).
pub type EncodeWeights<W> = Arc<dyn Fn(&W) -> Vec<u8> + Send + Sync>;
/// Turns those bytes back into weights on a worker.
pub type DecodeWeights<W> = Arc<dyn Fn(&[u8]) -> Result<W, String> + Send + Sync>;

/// Default chunk: well below ractor_cluster's 16 MiB frame limit, with room for the frame's header.
pub const DEFAULT_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// One encoded version, as the hub serves it.
pub struct WeightsBlob {
    pub version: PolicyVersion,
    bytes: Vec<u8>,
    checksum: u32,
    chunk_bytes: usize,
}

impl WeightsBlob {
    pub fn new(version: PolicyVersion, bytes: Vec<u8>, chunk_bytes: usize) -> Self {
        let checksum = crc32fast::hash(&bytes);
        Self { version, bytes, checksum, chunk_bytes: chunk_bytes.max(1) }
    }

    pub fn chunks(&self) -> u32 {
        self.bytes.len().div_ceil(self.chunk_bytes).max(1) as u32
    }

    pub fn chunk(&self, index: u32) -> Option<WeightChunk> {
        if index >= self.chunks() {
            return None;
        }
        let start = index as usize * self.chunk_bytes;
        let end = (start + self.chunk_bytes).min(self.bytes.len());
        Some(WeightChunk {
            version: self.version,
            index,
            chunks: self.chunks(),
            total_bytes: self.bytes.len() as u64,
            checksum: self.checksum,
            bytes: self.bytes[start..end].to_vec(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssemblyError {
    #[error("chunk {index} of version {version} does not continue the transfer (expected chunk {expected} of version {want})")]
    OutOfOrder { version: PolicyVersion, index: u32, want: PolicyVersion, expected: u32 },
    #[error("version {version}: {got} bytes arrived for {want} announced")]
    Length { version: PolicyVersion, got: u64, want: u64 },
    #[error("version {version}: checksum {got:08x} does not match the announced {want:08x}")]
    Checksum { version: PolicyVersion, got: u32, want: u32 },
}

/// Collects the chunks of one version in order on a worker.
pub struct Assembly {
    version: PolicyVersion,
    next: u32,
    bytes: Vec<u8>,
}

impl Assembly {
    pub fn new(version: PolicyVersion) -> Self {
        Self { version, next: 0, bytes: Vec::new() }
    }

    /// Adds `chunk`; returns the whole blob, checked, after the last one.
    pub fn add(&mut self, chunk: WeightChunk) -> Result<Option<Vec<u8>>, AssemblyError> {
        if chunk.version != self.version || chunk.index != self.next {
            return Err(AssemblyError::OutOfOrder { version: chunk.version, index: chunk.index, want: self.version, expected: self.next });
        }
        if self.bytes.is_empty() {
            self.bytes.reserve(chunk.total_bytes.min(usize::MAX as u64) as usize);
        }
        self.bytes.extend_from_slice(&chunk.bytes);
        self.next += 1;
        if self.next < chunk.chunks {
            return Ok(None);
        }
        let got = self.bytes.len() as u64;
        if got != chunk.total_bytes {
            return Err(AssemblyError::Length { version: self.version, got, want: chunk.total_bytes });
        }
        let sum = crc32fast::hash(&self.bytes);
        if sum != chunk.checksum {
            return Err(AssemblyError::Checksum { version: self.version, got: sum, want: chunk.checksum });
        }
        Ok(Some(std::mem::take(&mut self.bytes)))
    }

    pub fn next_index(&self) -> u32 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reassemble_to_the_blob() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let blob = WeightsBlob::new(4, bytes.clone(), 300);
        assert_eq!(blob.chunks(), 4);
        let mut a = Assembly::new(4);
        for i in 0..3 {
            assert_eq!(a.add(blob.chunk(i).unwrap()).unwrap(), None);
        }
        assert_eq!(a.add(blob.chunk(3).unwrap()).unwrap(), Some(bytes));
        assert!(blob.chunk(4).is_none());
    }

    #[test]
    fn a_corrupted_chunk_fails_the_checksum_and_a_skipped_one_is_out_of_order() {
        let blob = WeightsBlob::new(1, vec![9u8; 10], 4);
        let mut a = Assembly::new(1);
        a.add(blob.chunk(0).unwrap()).unwrap();
        let mut bad = blob.chunk(1).unwrap();
        bad.bytes[0] ^= 1;
        a.add(bad).unwrap();
        assert!(matches!(a.add(blob.chunk(2).unwrap()), Err(AssemblyError::Checksum { .. })));
        let mut b = Assembly::new(1);
        assert!(matches!(b.add(blob.chunk(1).unwrap()), Err(AssemblyError::OutOfOrder { .. })));
    }
}
