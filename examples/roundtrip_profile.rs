//! A GET loop for instruction counting: `cargo build --release --example roundtrip_profile`, then
//! `valgrind --tool=callgrind target/release/examples/roundtrip_profile keeper 20000`.
//!
//! Arguments: `keeper` or `raw`, the number of GETs (default 20 000), the number of tasks
//! (default 1) and `mt` for the 2-worker multi-threaded runtime (default: current-thread, whose
//! counts repeat to within a fraction of a percent). Both paths reach the simulator's in-memory
//! Redis through the same transport, as the `roundtrip/get/sim` bench rows do (`REDIS_PORT=n`:
//! a real server on 127.0.0.1 instead; `REDIS_KEEPER_*` variables apply); a warm-up of 1 000
//! GETs runs first, so connecting is outside the counted loop (callgrind's
//! `--toggle-collect=*run_gets*` counts the loop alone). It prints the wall time per GET of the
//! counted loop, for quick A/B runs outside valgrind.

use std::collections::HashMap;
use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use redis_keeper::seams::tokio::{TokioClock, TokioSpawn};
use redis_keeper::seams::Runtime;
use redis_keeper::sim::{SimClock, SimRedis, Trace};
use redis_keeper::{Keeper, KeeperConfig, Rng};

const KEY: &str = "profile:k";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args
        .first()
        .map(String::as_str)
        .unwrap_or("keeper")
        .to_string();
    let n: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let tasks: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let rt = if args.get(3).map(String::as_str) == Some("mt") {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    // `REDIS_PORT=<port>`: a real server on 127.0.0.1 instead of the simulator.
    let port: Option<u16> = std::env::var("REDIS_PORT")
        .ok()
        .and_then(|p| p.parse().ok());
    let server = SimRedis::new(SimClock::new(), Rng::new(7), Trace::hash_only());
    let runtime = match port {
        Some(_) => {
            let _entered = rt.enter();
            Runtime::tokio()
        }
        None => Runtime::new(
            "tokio+sim",
            Arc::new(TokioClock::new(rt.handle().clone())),
            Arc::new(TokioSpawn::new(rt.handle().clone())),
            Arc::new(server.transport()),
        ),
    };
    let mut config = KeeperConfig::default();
    if let Some(port) = port {
        config = config.host("127.0.0.1").port(port);
    }
    // `REDIS_KEEPER_*` variables apply, e.g. `REDIS_KEEPER_SHARED_CONNECTIONS=1`.
    let env: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("REDIS_KEEPER_"))
        .collect();
    let keeper = Keeper::builder(config)
        .runtime(runtime)
        .env(env)
        .seed(7)
        .build()
        .expect("keeper");
    let raw = rt.block_on(async {
        if let Some(port) = port {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).expect("url");
            return client
                .get_multiplexed_async_connection()
                .await
                .expect("raw connection");
        }
        let stream = server.connect().expect("sim connect");
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(None);
        let (conn, driver) = MultiplexedConnection::new_with_config(
            &redis::RedisConnectionInfo::default(),
            stream,
            config,
        )
        .await
        .expect("raw connection");
        tokio::spawn(driver);
        conn
    });
    rt.block_on(async {
        // Raw runs leave the Keeper without a connection (nor its background work).
        if mode == "raw" {
            let _: () = raw.clone().set(KEY, "v").await.expect("SET");
        } else {
            let mut conn = keeper.get("main").await.expect("get");
            let _: () = conn.set(KEY, "v").await.expect("SET");
        }
    });
    for count in [1_000, n] {
        let started = std::time::Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (keeper, raw, mode) = (keeper.clone(), raw.clone(), mode.clone());
                rt.spawn(run_gets(keeper, raw, mode, count / tasks))
            })
            .collect();
        rt.block_on(async {
            for h in handles {
                h.await.expect("task");
            }
        });
        if count == n {
            let per_op = started.elapsed().as_nanos() / u128::from(n.max(1));
            println!("{mode} tasks={tasks}: {per_op} ns per GET");
        }
    }
    rt.block_on(keeper.close());
}

/// `n` GETs through a Keeper's shared handle, or through the raw connection.
async fn run_gets(keeper: Keeper, raw: MultiplexedConnection, mode: String, n: u64) {
    if mode == "raw" {
        let mut conn = raw;
        for _ in 0..n {
            let v: Option<String> = conn.get(KEY).await.expect("GET");
            std::hint::black_box(v);
        }
    } else {
        let mut conn = keeper.get("main").await.expect("get");
        for _ in 0..n {
            let v: Option<String> = conn.get(KEY).await.expect("GET");
            std::hint::black_box(v);
        }
    }
}
