//! Heap bytes, counted by a global allocator that tracks live bytes on every thread.
//!
//! - `raw_connection`: one redis-rs `MultiplexedConnection` (with its driver task), opened
//!   through the same transport.
//! - `pooled_idle_connection`: one idle exclusive connection in a Keeper's pool (the Keeper's
//!   `RedisConn` wrapper, its driver guard, the idle entry and the connection itself).
//! - `pooled_overhead`: the difference of the two, the Keeper's own cost per idle connection.
//! - `pooled_used_overhead`: the same after one command on each (raw and pooled): a connection
//!   that has run commands also keeps its response-timeout watchdog (a parked task and its
//!   queue).
//! - `keeper_16_databases`: a Keeper with the 16 canonical databases (no connection yet).
//! - `per_database`: each further configured database ((64 − 16) aliases, averaged).
//!
//! Uses the real server when `BENCH_REDIS_PORT` is set (`scripts/bench.sh`), else the simulator
//! (whose server-side state per connection is then counted in both connection figures alike).
//! Prints `MEMORY <name> <bytes>` lines.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use common::{Rt, Target};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap bytes once background tasks (connection drivers, Keeper loops) have settled.
fn live() -> isize {
    std::thread::sleep(Duration::from_millis(200));
    LIVE.load(Ordering::Relaxed)
}

const N: usize = 64;

fn main() {
    let rt = Rt::Tokio;
    let target = match common::real_port() {
        Some(port) => Target::Real(port),
        None => Target::sim(),
    };
    common::tokio_rt(); // the runtime's own memory is not counted
    println!(
        "memory through the {} transport, {N} connections",
        target.name()
    );

    // Warm-up: the first connection allocates process-wide state (DNS, TLS-free codecs, …).
    drop(target.raw_multiplexed(rt));
    let before = live();
    let mut raws: Vec<_> = (0..N).map(|_| target.raw_multiplexed(rt)).collect();
    let raw = (live() - before) / N as isize;
    // What a raw connection keeps after its first command (buffers redis-rs grows on use).
    let before = live();
    rt.block_on(async {
        for conn in &mut raws {
            let _: Option<String> = redis::AsyncCommands::get(conn, "memory:k")
                .await
                .expect("GET");
        }
    });
    let raw_used = (live() - before) / N as isize;
    drop(raws);

    let keeper = target.keeper_with(rt, 0, |d| d.max_connections(N as u32 + 2));
    common::warm_exclusive(&keeper, rt, "main", 1);
    let before = live();
    common::warm_exclusive(&keeper, rt, "main", N);
    let pooled = (live() - before) / (N as isize - 1);
    // The same connections after one command each: a connection that has run commands also
    // keeps its response-timeout watchdog task (parked while nothing is outstanding).
    let before = live();
    rt.block_on(async {
        let mut held = Vec::with_capacity(N);
        for _ in 0..N {
            held.push(keeper.get_exclusive("main").await.expect("exclusive"));
        }
        for conn in &mut held {
            let _: Option<String> = redis::AsyncCommands::get(conn, "memory:k")
                .await
                .expect("GET");
        }
    });
    let used = (live() - before) / N as isize;
    rt.block_on(keeper.close());
    drop(keeper);

    let before = live();
    let k16 = target.keeper_with(rt, 0, |d| d);
    let keeper16 = live() - before;
    let before = live();
    let k64 = target.keeper_with(rt, 48, |d| d);
    let keeper64 = live() - before;
    let per_db = (keeper64 - keeper16) / 48;
    rt.block_on(k16.close());
    rt.block_on(k64.close());

    for (name, bytes) in [
        ("raw_connection", raw),
        ("pooled_idle_connection", pooled),
        ("pooled_overhead", pooled - raw),
        ("pooled_used_overhead", pooled + used - raw - raw_used),
        ("keeper_16_databases", keeper16),
        ("per_database", per_db),
    ] {
        println!("MEMORY {name} {bytes}");
    }
}
