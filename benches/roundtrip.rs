//! Round trips against a real server (`BENCH_REDIS_PORT`, set by `scripts/bench.sh`); without one
//! only the simulator rows run.
//!
//! - `roundtrip/get/<target>`: GET of a small key with 1, 16 and 64 concurrent tasks on a
//!   2-worker tokio runtime: `keeper` (each task takes a shared handle once and sends GETs on it),
//!   `keeper_get_each` (a fresh `keeper.get` per GET), `raw_multiplexed` (each task clones one
//!   redis-rs `MultiplexedConnection`), and per GET a checkout from deadpool-redis and bb8-redis
//!   (default, and with their checkout check off). `keeper_as_raw` is `keeper` with the raw
//!   anchor's connection settings: one shared connection instead of two, and `TCP_NODELAY` off
//!   (redis-rs's default; the Keeper sets it on), so the difference is the Keeper's own work;
//!   `keeper_one_shared` and `keeper_nodelay_off` change one of those two defaults each.
//! - `roundtrip/pipeline16/real`: a 16-command GET pipeline, one task.
//! - `roundtrip/blocking_get/real`: GET on a raw `redis::Connection`, through r2d2, and through
//!   a Keeper's blocking connections (`get_blocking_shared`, `get_blocking`), one thread.
//!
//! Timings are wall time per GET (or per pipeline): total time over all tasks / operations.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{Rt, Target, POOL};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use redis::AsyncCommands;

const KEY: &str = "bench:k";
const CONCURRENCY: [usize; 3] = [1, 16, 64];

fn get_rows(c: &mut Criterion, target: &Target) {
    let rt = Rt::Tokio;
    let keeper = target.keeper(rt);
    let as_raw = target.keeper_with(rt, 0, |d| {
        d.max_connections(POOL)
            .shared_connections(1)
            .tcp_nodelay(false)
    });
    // Each of the two defaults the raw anchor lacks, alone: which costs what.
    let one_shared = target.keeper_with(rt, 0, |d| d.max_connections(POOL).shared_connections(1));
    let no_nodelay = target.keeper_with(rt, 0, |d| d.max_connections(POOL).tcp_nodelay(false));
    let raw = target.raw_multiplexed(rt);
    rt.block_on(async {
        let mut conn = keeper.get("main").await.expect("get");
        let _: () = conn.set(KEY, "v").await.expect("SET");
    });
    let mut group = c.benchmark_group(format!("roundtrip/get/{}", target.name()));
    for tasks in CONCURRENCY {
        group.bench_with_input(
            BenchmarkId::new("raw_multiplexed", tasks),
            &tasks,
            |b, &t| b.iter_custom(|iters| common::raw_get_loop(rt, t, iters, &raw, KEY)),
        );
        for (name, keeper) in [
            ("keeper", &keeper),
            ("keeper_as_raw", &as_raw),
            ("keeper_one_shared", &one_shared),
            ("keeper_nodelay_off", &no_nodelay),
        ] {
            group.bench_with_input(BenchmarkId::new(name, tasks), &tasks, |b, &t| {
                b.iter_custom(|iters| common::shared_get_loop(rt, t, iters, keeper, KEY))
            });
        }
        group.bench_with_input(
            BenchmarkId::new("keeper_get_each", tasks),
            &tasks,
            |b, &t| {
                b.iter_custom(|iters| {
                    rt.run(t, iters, |n| {
                        let keeper = keeper.clone();
                        async move {
                            for _ in 0..n {
                                let mut conn = keeper.get("main").await.expect("get");
                                let v: Option<String> = conn.get(KEY).await.expect("GET");
                                black_box(v);
                            }
                        }
                    })
                })
            },
        );
    }
    if let Target::Real(_) = target {
        anchor_rows(&mut group);
    }
    group.finish();
    for k in [&keeper, &as_raw, &one_shared, &no_nodelay] {
        rt.block_on(k.close());
    }
}

fn anchor_rows(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let rt = Rt::Tokio;
    let url = common::real_url().expect("real server");
    let dp = common::deadpool_anchor::default_pool(&url, POOL as usize);
    let dp_off = common::deadpool_anchor::no_check_pool(&url, POOL as usize);
    let bb = common::bb8_pool(&url, POOL, true);
    let bb_off = common::bb8_pool(&url, POOL, false);
    for tasks in CONCURRENCY {
        group.bench_with_input(BenchmarkId::new("deadpool", tasks), &tasks, |b, &t| {
            b.iter_custom(|iters| {
                rt.run(t, iters, |n| {
                    let pool = dp.clone();
                    async move {
                        for _ in 0..n {
                            let mut conn = pool.get().await.expect("deadpool");
                            let v: Option<String> = conn.get(KEY).await.expect("GET");
                            black_box(v);
                        }
                    }
                })
            })
        });
        group.bench_with_input(
            BenchmarkId::new("deadpool_nocheck", tasks),
            &tasks,
            |b, &t| {
                b.iter_custom(|iters| {
                    rt.run(t, iters, |n| {
                        let pool = dp_off.clone();
                        async move {
                            for _ in 0..n {
                                let mut conn = pool.get().await.expect("deadpool");
                                let v: Option<String> = conn.get(KEY).await.expect("GET");
                                black_box(v);
                            }
                        }
                    })
                })
            },
        );
        for (name, pool) in [("bb8", &bb), ("bb8_nocheck", &bb_off)] {
            group.bench_with_input(BenchmarkId::new(name, tasks), &tasks, |b, &t| {
                b.iter_custom(|iters| {
                    rt.run(t, iters, |n| {
                        let pool = pool.clone();
                        async move {
                            for _ in 0..n {
                                let mut conn = pool.get().await.expect("bb8");
                                let v: Option<String> = conn.get(KEY).await.expect("GET");
                                black_box(v);
                            }
                        }
                    })
                })
            });
        }
    }
}

fn pipeline_rows(c: &mut Criterion, target: &Target) {
    let rt = Rt::Tokio;
    let keeper = target.keeper(rt);
    let raw = target.raw_multiplexed(rt);
    let mut pipe = redis::pipe();
    for _ in 0..16 {
        pipe.get(KEY);
    }
    let pipe = std::sync::Arc::new(pipe);
    let mut group = c.benchmark_group(format!("roundtrip/pipeline16/{}", target.name()));
    group.bench_function("raw_multiplexed", |b| {
        b.iter_custom(|iters| {
            rt.run(1, iters, |n| {
                let mut conn = raw.clone();
                let pipe = pipe.clone();
                async move {
                    for _ in 0..n {
                        let v: Vec<Option<String>> =
                            pipe.query_async(&mut conn).await.expect("pipeline");
                        black_box(v);
                    }
                }
            })
        })
    });
    group.bench_function("keeper", |b| {
        b.iter_custom(|iters| {
            rt.run(1, iters, |n| {
                let keeper = keeper.clone();
                let pipe = pipe.clone();
                async move {
                    let mut conn = keeper.get("main").await.expect("get");
                    for _ in 0..n {
                        let v: Vec<Option<String>> =
                            pipe.query_async(&mut conn).await.expect("pipeline");
                        black_box(v);
                    }
                }
            })
        })
    });
    group.finish();
    rt.block_on(keeper.close());
}

fn blocking_rows(c: &mut Criterion) {
    let Some(url) = common::real_url() else {
        return;
    };
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client.get_connection().expect("blocking connection");
    let pool = common::r2d2_pool(&url, POOL, false);
    let mut group = c.benchmark_group("roundtrip/blocking_get/real");
    group.bench_function("raw_connection", |b| {
        b.iter(|| {
            let v: Option<String> = redis::Commands::get(&mut conn, KEY).expect("GET");
            black_box(v)
        })
    });
    group.bench_function("r2d2_nocheck", |b| {
        b.iter(|| {
            let mut conn = pool.get().expect("r2d2");
            let v: Option<String> = redis::Commands::get(&mut *conn, KEY).expect("GET");
            black_box(v)
        })
    });
    let keeper = Target::Real(common::real_port().expect("real server")).keeper(Rt::Tokio);
    let mut shared = keeper
        .get_blocking_shared("main")
        .expect("get_blocking_shared");
    let mut exclusive = keeper.get_blocking("main").expect("get_blocking");
    group.bench_function("keeper_blocking", |b| {
        b.iter(|| {
            let v: Option<String> = redis::Commands::get(&mut shared, KEY).expect("GET");
            black_box(v)
        })
    });
    group.bench_function("keeper_blocking_exclusive", |b| {
        b.iter(|| {
            let v: Option<String> = redis::Commands::get(&mut exclusive, KEY).expect("GET");
            black_box(v)
        })
    });
    group.finish();
}

fn roundtrip(c: &mut Criterion) {
    let mut targets = vec![Target::sim()];
    if let Some(port) = common::real_port() {
        targets.push(Target::Real(port));
    }
    for target in &targets {
        get_rows(c, target);
        pipeline_rows(c, target);
    }
    blocking_rows(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = roundtrip
}
criterion_main!(benches);
