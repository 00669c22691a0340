//! A global allocator that keeps a few freed large blocks for reuse by the next allocation of
//! the same size.
//!
//! glibc serves every allocation over 32 MiB with its own mmap and unmaps it on free, so each
//! learner step page-faults and zero-fills its big buffers (gradients of the embedding and
//! output matrices, logits) afresh and pays a TLB shootdown per unmap. A step allocates the
//! same sizes as the last one, so an exact-size cache turns that into reuse. Blocks are never
//! split or merged (no fragmentation), and the cache holds at most `set_capacity` bytes, so the
//! process keeps at most that much more than it uses. Capacity 0 (the default until `main`
//! sets one) passes everything to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Smaller blocks come from glibc's heap, which already reuses them.
const MIN_BYTES: usize = 32 << 20;
const SLOTS: usize = 16;

static CAPACITY: AtomicUsize = AtomicUsize::new(0);

/// The most bytes of freed blocks kept for reuse.
pub fn set_capacity(bytes: usize) {
    CAPACITY.store(bytes, Ordering::Relaxed);
}

pub struct ReusingAllocator;

#[derive(Clone, Copy)]
struct Slot {
    ptr: usize,
    size: usize,
    align: usize,
    /// When it was freed: the oldest is evicted first.
    freed_at: u64,
}

const EMPTY: Slot = Slot { ptr: 0, size: 0, align: 0, freed_at: 0 };

struct Cache {
    slots: [Slot; SLOTS],
    bytes: usize,
    clock: u64,
}

// A Mutex, not a Vec: the allocator must not allocate.
static CACHE: Mutex<Cache> = Mutex::new(Cache { slots: [EMPTY; SLOTS], bytes: 0, clock: 0 });

impl Cache {
    fn take(&mut self, layout: Layout) -> Option<*mut u8> {
        let slot = self.slots.iter_mut().find(|s| s.ptr != 0 && s.size == layout.size() && s.align == layout.align())?;
        let ptr = slot.ptr as *mut u8;
        self.bytes -= slot.size;
        *slot = EMPTY;
        Some(ptr)
    }

    /// Keeps the block if it fits the capacity, evicting older ones; the evicted blocks are
    /// returned for the caller to free.
    fn put(&mut self, ptr: *mut u8, layout: Layout, capacity: usize, evicted: &mut [Slot; SLOTS]) -> bool {
        if layout.size() > capacity {
            return false;
        }
        let mut n = 0;
        while self.bytes + layout.size() > capacity || self.slots.iter().all(|s| s.ptr != 0) {
            let Some(oldest) = self.slots.iter_mut().filter(|s| s.ptr != 0).min_by_key(|s| s.freed_at) else { break };
            self.bytes -= oldest.size;
            evicted[n] = *oldest;
            n += 1;
            *oldest = EMPTY;
        }
        self.clock += 1;
        let free = self.slots.iter_mut().find(|s| s.ptr == 0).expect("eviction leaves a free slot");
        *free = Slot { ptr: ptr as usize, size: layout.size(), align: layout.align(), freed_at: self.clock };
        self.bytes += layout.size();
        true
    }
}

fn cacheable(layout: Layout) -> bool {
    layout.size() >= MIN_BYTES && CAPACITY.load(Ordering::Relaxed) > 0
}

fn take(layout: Layout) -> Option<*mut u8> {
    CACHE.lock().ok()?.take(layout)
}

unsafe impl GlobalAlloc for ReusingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if cacheable(layout) {
            if let Some(ptr) = take(layout) {
                return ptr;
            }
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if cacheable(layout) {
            if let Some(ptr) = take(layout) {
                // Writing zeros over resident pages costs less than faulting in fresh ones.
                std::ptr::write_bytes(ptr, 0, layout.size());
                return ptr;
            }
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if cacheable(layout) {
            let mut evicted = [EMPTY; SLOTS];
            let kept = match CACHE.lock() {
                Ok(mut cache) => cache.put(ptr, layout, CAPACITY.load(Ordering::Relaxed), &mut evicted),
                Err(_) => false,
            };
            for old in evicted.iter().filter(|s| s.ptr != 0) {
                System.dealloc(old.ptr as *mut u8, Layout::from_size_align_unchecked(old.size, old.align));
            }
            if kept {
                return;
            }
        }
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        if !cacheable(layout) && !cacheable(new_layout) {
            return System.realloc(ptr, layout, new_size);
        }
        let new = self.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(mib: usize) -> Layout {
        Layout::from_size_align(mib << 20, 16).unwrap()
    }

    #[test]
    fn a_freed_block_is_reused_by_the_same_size_only_and_eviction_keeps_the_capacity() {
        let mut cache = Cache { slots: [EMPTY; SLOTS], bytes: 0, clock: 0 };
        let mut evicted = [EMPTY; SLOTS];
        let (a, b, c) = (0x1000 as *mut u8, 0x2000 as *mut u8, 0x3000 as *mut u8);
        assert!(cache.put(a, layout(40), 100 << 20, &mut evicted));
        assert!(cache.take(layout(41)).is_none(), "another size is not served");
        assert!(cache.put(b, layout(50), 100 << 20, &mut evicted));
        assert_eq!(cache.bytes, 90 << 20);
        // 90 + 40 > 100: the oldest (a) goes.
        assert!(cache.put(c, layout(40), 100 << 20, &mut evicted));
        assert_eq!(evicted[0].ptr, a as usize);
        assert_eq!(cache.bytes, 90 << 20);
        assert_eq!(cache.take(layout(40)), Some(c));
        assert_eq!(cache.take(layout(50)), Some(b));
        assert_eq!(cache.bytes, 0);
        assert!(!cache.put(a, layout(200), 100 << 20, &mut evicted), "bigger than the capacity");
    }

    #[test]
    fn zeroed_allocations_from_the_cache_are_zero() {
        set_capacity(256 << 20);
        let n = (40 << 20) / 4;
        let mut v = vec![7f32; n];
        v[n - 1] = 3.0;
        drop(v);
        let w = vec![0f32; n];
        assert!(w.iter().all(|&x| x == 0.0));
        set_capacity(0);
    }
}
