//! GET through a Redis Cluster database against a real cluster (`BENCH_CLUSTER_NODES`, its
//! nodes as `host:port,…`; `scripts/bench.sh` starts three masters); without one nothing runs.
//!
//! - `cluster/get/<variant>/<tasks>`: GET of a small key with 1 and 64 concurrent tasks on a
//!   2-worker tokio runtime: `keeper` (the default config plus `cluster.nodes`; each task takes
//!   a handle once) and `raw_cluster` (each task clones one redis-rs
//!   `cluster_async::ClusterConnection` built with redis-rs's defaults).

mod common;

use std::hint::black_box;

use common::{tokio_rt, Rt};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::AsyncCommands;
use redis_keeper::{Keeper, KeeperConfig};

const KEY: &str = "bench:cluster";
const CONCURRENCY: [usize; 2] = [1, 64];

/// The cluster's nodes, if the bench script started one.
fn nodes() -> Option<Vec<String>> {
    let nodes = std::env::var("BENCH_CLUSTER_NODES").ok()?;
    Some(nodes.split(',').map(str::to_owned).collect())
}

fn keeper(nodes: &[String]) -> Keeper {
    common::tokio_keeper(
        KeeperConfig::default().configure("main", |d| d.cluster_nodes(nodes.to_vec())),
    )
}

fn raw(nodes: &[String]) -> ClusterConnection {
    let urls: Vec<String> = nodes.iter().map(|n| format!("redis://{n}")).collect();
    let client = ClusterClient::new(urls).expect("cluster client");
    tokio_rt()
        .block_on(client.get_async_connection())
        .expect("raw cluster connection")
}

fn raw_get_loop(tasks: usize, iters: u64, raw: &ClusterConnection) -> std::time::Duration {
    Rt::Tokio.run(tasks, iters, |n| {
        let mut conn = raw.clone();
        async move {
            for _ in 0..n {
                let v: Option<String> = conn.get(KEY).await.expect("GET");
                black_box(v);
            }
        }
    })
}

fn get_rows(c: &mut Criterion) {
    let Some(nodes) = nodes() else {
        eprintln!("cluster bench: BENCH_CLUSTER_NODES not set; nothing to measure");
        return;
    };
    let rt = Rt::Tokio;
    let keeper = keeper(&nodes);
    let raw = raw(&nodes);
    rt.block_on(async {
        let mut conn = keeper.get("main").await.expect("get");
        let _: () = conn.set(KEY, "v").await.expect("SET");
    });
    let mut group = c.benchmark_group("cluster/get");
    for tasks in CONCURRENCY {
        group.bench_with_input(BenchmarkId::new("raw_cluster", tasks), &tasks, |b, &t| {
            b.iter_custom(|iters| raw_get_loop(t, iters, &raw))
        });
        group.bench_with_input(BenchmarkId::new("keeper", tasks), &tasks, |b, &t| {
            b.iter_custom(|iters| common::shared_get_loop(rt, t, iters, &keeper, KEY))
        });
    }
    group.finish();
    rt.block_on(keeper.close());
}

criterion_group!(benches, get_rows);
criterion_main!(benches);
