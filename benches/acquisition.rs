//! Acquisition: checkout + return, no command.
//!
//! - `acquire/<target>/<runtime>`: `keeper_get` (a share of a multiplexed connection) and
//!   `keeper_exclusive` (a pooled connection) against `raw_clone` (cloning and dropping a raw
//!   redis-rs `MultiplexedConnection` handle), with 1, 2, 16 and 64 concurrent tasks on a
//!   2-worker tokio runtime and a 2-thread smol executor, pool size 16, through the simulator
//!   transport (`sim`) and a real server (`real`, when `BENCH_REDIS_PORT` is set).
//! - `acquire/real/tokio` also has deadpool-redis and bb8-redis, with their default checkout
//!   check (a PING round trip) and with it off; `acquire_blocking/real` has r2d2 (redis's `r2d2`
//!   feature) on 1, 2, 16 and 64 threads beside `keeper.get_blocking` and `get_blocking_shared`.
//! - `scaling/…`: the same checkouts with 16 and 64 databases configured, and from a pool holding
//!   1 000 idle connections, with the default sweep and with a sweep every 10 ms.
//!
//! Each timing is wall time per operation: the total over all tasks divided by the operations.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{Rt, Target, POOL, TASKS};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use redis_keeper::Keeper;

fn keeper_rows(c: &mut Criterion, target: &Target, rt: Rt) {
    let keeper = target.keeper(rt);
    // Open the shared slots and a few exclusive connections before timing.
    rt.block_on(async {
        drop(keeper.get("main").await.expect("get"));
    });
    common::warm_exclusive(&keeper, rt, "main", 4);
    let raw = target.raw_multiplexed(rt);

    let mut group = c.benchmark_group(format!("acquire/{}/{}", target.name(), rt.name()));
    for tasks in TASKS {
        group.bench_with_input(BenchmarkId::new("raw_clone", tasks), &tasks, |b, &tasks| {
            b.iter_custom(|iters| {
                rt.run(tasks, iters, |n| {
                    let raw = raw.clone();
                    async move {
                        for _ in 0..n {
                            drop(black_box(raw.clone()));
                        }
                    }
                })
            })
        });
        group.bench_with_input(
            BenchmarkId::new("keeper_get", tasks),
            &tasks,
            |b, &tasks| {
                b.iter_custom(|iters| {
                    rt.run(tasks, iters, |n| {
                        let keeper = keeper.clone();
                        async move {
                            for _ in 0..n {
                                drop(black_box(keeper.get("main").await.expect("get")));
                            }
                        }
                    })
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("keeper_exclusive", tasks),
            &tasks,
            |b, &tasks| {
                b.iter_custom(|iters| {
                    rt.run(tasks, iters, |n| {
                        let keeper = keeper.clone();
                        async move {
                            for _ in 0..n {
                                drop(black_box(
                                    keeper.get_exclusive("main").await.expect("exclusive"),
                                ));
                            }
                        }
                    })
                })
            },
        );
    }
    if let (Target::Real(_), Rt::Tokio) = (target, rt) {
        anchor_rows(&mut group);
    }
    group.finish();
    rt.block_on(keeper.close());
}

/// deadpool-redis and bb8-redis on the same server, default and with the checkout check off.
fn anchor_rows(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let url = common::real_url().expect("real server");
    let rt = Rt::Tokio;
    let dp = common::deadpool_anchor::default_pool(&url, POOL as usize);
    let dp_off = common::deadpool_anchor::no_check_pool(&url, POOL as usize);
    let bb = common::bb8_pool(&url, POOL, true);
    let bb_off = common::bb8_pool(&url, POOL, false);
    rt.block_on(async {
        drop(dp.get().await.expect("deadpool"));
        drop(dp_off.get().await.expect("deadpool"));
        drop(bb.get().await.expect("bb8"));
        drop(bb_off.get().await.expect("bb8"));
    });
    for tasks in TASKS {
        group.bench_with_input(BenchmarkId::new("deadpool", tasks), &tasks, |b, &tasks| {
            b.iter_custom(|iters| {
                rt.run(tasks, iters, |n| {
                    let pool = dp.clone();
                    async move {
                        for _ in 0..n {
                            drop(black_box(pool.get().await.expect("deadpool")));
                        }
                    }
                })
            })
        });
        group.bench_with_input(
            BenchmarkId::new("deadpool_nocheck", tasks),
            &tasks,
            |b, &tasks| {
                b.iter_custom(|iters| {
                    rt.run(tasks, iters, |n| {
                        let pool = dp_off.clone();
                        async move {
                            for _ in 0..n {
                                drop(black_box(pool.get().await.expect("deadpool")));
                            }
                        }
                    })
                })
            },
        );
        for (name, pool) in [("bb8", &bb), ("bb8_nocheck", &bb_off)] {
            group.bench_with_input(BenchmarkId::new(name, tasks), &tasks, |b, &tasks| {
                b.iter_custom(|iters| {
                    rt.run(tasks, iters, |n| {
                        let pool = pool.clone();
                        async move {
                            for _ in 0..n {
                                drop(black_box(pool.get().await.expect("bb8")));
                            }
                        }
                    })
                })
            });
        }
    }
}

/// r2d2 (blocking) on 1, 2, 16 and 64 threads, default (PING on checkout) and with it off.
fn blocking_rows(c: &mut Criterion) {
    let Some(url) = common::real_url() else {
        return;
    };
    let mut group = c.benchmark_group("acquire_blocking/real");
    for (name, check) in [("r2d2", true), ("r2d2_nocheck", false)] {
        let pool = common::r2d2_pool(&url, POOL, check);
        drop(pool.get().expect("r2d2"));
        for tasks in TASKS {
            group.bench_with_input(BenchmarkId::new(name, tasks), &tasks, |b, &tasks| {
                b.iter_custom(|iters| {
                    let pool = pool.clone();
                    common::run_threads(tasks, iters, move |n| {
                        for _ in 0..n {
                            drop(black_box(pool.get().expect("r2d2")));
                        }
                    })
                })
            });
        }
    }
    let port = common::real_port().expect("real server");
    let keeper = Target::Real(port).keeper(Rt::Tokio);
    drop(
        keeper
            .get_blocking_shared("main")
            .expect("get_blocking_shared"),
    );
    common::warm_exclusive(&keeper, Rt::Tokio, "main", 4);
    for tasks in TASKS {
        group.bench_with_input(
            BenchmarkId::new("keeper_blocking", tasks),
            &tasks,
            |b, &tasks| {
                b.iter_custom(|iters| {
                    let keeper = keeper.clone();
                    common::run_threads(tasks, iters, move |n| {
                        for _ in 0..n {
                            drop(black_box(keeper.get_blocking("main").expect("blocking")));
                        }
                    })
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("keeper_blocking_shared", tasks),
            &tasks,
            |b, &tasks| {
                b.iter_custom(|iters| {
                    let keeper = keeper.clone();
                    common::run_threads(tasks, iters, move |n| {
                        for _ in 0..n {
                            drop(black_box(
                                keeper.get_blocking_shared("main").expect("blocking"),
                            ));
                        }
                    })
                })
            },
        );
    }
    group.finish();
}

fn one_task_rows(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    keeper: &Keeper,
    label: &str,
) {
    let rt = Rt::Tokio;
    group.bench_function(BenchmarkId::new("keeper_get", label), |b| {
        b.iter_custom(|iters| {
            rt.run(1, iters, |n| {
                let keeper = keeper.clone();
                async move {
                    for _ in 0..n {
                        drop(black_box(keeper.get("main").await.expect("get")));
                    }
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("keeper_exclusive", label), |b| {
        b.iter_custom(|iters| {
            rt.run(1, iters, |n| {
                let keeper = keeper.clone();
                async move {
                    for _ in 0..n {
                        drop(black_box(
                            keeper.get_exclusive("main").await.expect("exclusive"),
                        ));
                    }
                }
            })
        })
    });
}

/// Acquisition cost against the number of configured databases and of idle connections.
fn scaling_rows(c: &mut Criterion) {
    let rt = Rt::Tokio;
    let target = Target::sim();
    let mut group = c.benchmark_group("scaling/sim/tokio");
    // The 16 canonical databases are always configured; 48 aliases make 64.
    for (extra, label) in [(0, "dbs=16"), (48, "dbs=64")] {
        let keeper = target.keeper_with(rt, extra, |d| d.max_connections(POOL));
        rt.block_on(async { drop(keeper.get("main").await.expect("get")) });
        common::warm_exclusive(&keeper, rt, "main", 4);
        one_task_rows(&mut group, &keeper, label);
        rt.block_on(keeper.close());
    }
    for (sweep, label) in [
        (Duration::from_secs(60), "idle=1000"),
        (Duration::from_millis(10), "idle=1000,sweep=10ms"),
    ] {
        let keeper = target.keeper_with(rt, 0, |d| {
            d.max_connections(1_002).idle_sweep_interval(sweep)
        });
        rt.block_on(async { drop(keeper.get("main").await.expect("get")) });
        common::warm_exclusive(&keeper, rt, "main", 1_000);
        one_task_rows(&mut group, &keeper, label);
        rt.block_on(keeper.close());
    }
    group.finish();
}

fn acquisition(c: &mut Criterion) {
    let mut targets = vec![Target::sim()];
    if let Some(port) = common::real_port() {
        targets.push(Target::Real(port));
    }
    for target in &targets {
        for rt in [Rt::Tokio, Rt::Smol] {
            keeper_rows(c, target, rt);
        }
    }
    blocking_rows(c);
    scaling_rows(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = acquisition
}
criterion_main!(benches);
