//! An allocation guard for the audio callback: a global allocator that
//! aborts if memory is allocated or freed on a thread while a [`Forbid`]
//! guard is alive there.
//!
//! The library never installs it; the `sparsa` binary does, in debug builds
//! (the ones the tests run), with
//! `#[global_allocator] static A: Guarded = Guarded;`. Without it the guard
//! is an unchecked flag.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static FORBIDDEN: Cell<bool> = const { Cell::new(false) };
}

/// Forbids allocation on this thread while alive.
pub struct Forbid;

impl Forbid {
    /// Forbids allocation on this thread until the guard drops.
    #[allow(clippy::new_without_default)] // a guard is made on purpose, never by default
    pub fn new() -> Self {
        FORBIDDEN.with(|f| f.set(true));
        Forbid
    }
}

impl Drop for Forbid {
    fn drop(&mut self) {
        FORBIDDEN.with(|f| f.set(false));
    }
}

fn check() {
    if FORBIDDEN.try_with(Cell::get).unwrap_or(false) {
        // No formatting here: that could allocate again.
        let msg = b"sparsa: the audio callback allocated memory (debug allocation guard)\n";
        // SAFETY: writing a static buffer to fd 2.
        unsafe { write(2, msg.as_ptr(), msg.len()) };
        std::process::abort();
    }
}

extern "C" {
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
}

/// The system allocator, checked.
pub struct Guarded;

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Guarded {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        check();
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        check();
        System.dealloc(p, l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        check();
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        check();
        System.realloc(p, l, n)
    }
}
