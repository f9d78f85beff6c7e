//! The event trace of a simulated run: one line per event and a stable hash of all of them.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A shared, append-only log of simulation events.
///
/// Every event is one line, stamped with virtual time since the start of the run. The
/// [`hash`](Trace::hash) is FNV-1a over all lines: stable across runs, platforms and releases, so
/// the same seed must give the same hash.
///
/// ```
/// use std::time::Duration;
/// use redis_keeper::sim::Trace;
/// let a = Trace::new();
/// a.record(Duration::from_millis(5), "connect #1");
/// let b = Trace::new();
/// b.record(Duration::from_millis(5), "connect #1");
/// assert_eq!(a.hash(), b.hash());
/// assert_eq!(a.lines(), vec!["+5.000ms connect #1".to_string()]);
/// ```
#[derive(Clone, Default)]
pub struct Trace {
    inner: Arc<Mutex<TraceInner>>,
}

#[derive(Default)]
struct TraceInner {
    lines: Vec<String>,
    hash: Fnv,
    keep_lines: bool,
}

impl Trace {
    /// An empty trace that keeps its lines (for printing) as well as the hash.
    pub fn new() -> Self {
        let trace = Self::default();
        trace.lock().keep_lines = true;
        trace
    }

    /// An empty trace that keeps only the running hash and a count (cheap for long runs).
    pub fn hash_only() -> Self {
        Self::default()
    }

    /// Appends one event at virtual time `at` (time since the simulation started).
    pub fn record(&self, at: Duration, event: impl fmt::Display) {
        let line = format!("+{:.3}ms {event}", at.as_secs_f64() * 1000.0);
        let mut inner = self.lock();
        inner.hash.write(line.as_bytes());
        inner.hash.write(b"\n");
        inner.hash.count += 1;
        if inner.keep_lines {
            inner.lines.push(line);
        }
    }

    /// The lines recorded so far (empty for a [`Trace::hash_only`] trace).
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }

    /// How many events were recorded.
    pub fn len(&self) -> u64 {
        self.lock().hash.count
    }

    /// Whether no event was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The FNV-1a hash of every line recorded so far.
    pub fn hash(&self) -> u64 {
        self.lock().hash.state
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TraceInner> {
        // A panic while holding the lock cannot leave the trace half-written in a harmful way.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("events", &self.len())
            .field("hash", &format_args!("{:016x}", self.hash()))
            .finish()
    }
}

struct Fnv {
    state: u64,
    count: u64,
}

impl Default for Fnv {
    fn default() -> Self {
        Self {
            state: 0xcbf2_9ce4_8422_2325,
            count: 0,
        }
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.state ^= u64::from(*b);
            self.state = self.state.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
