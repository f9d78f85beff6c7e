//! Shared set-up for the benchmarks: runtimes (a 2-worker tokio runtime and a 2-thread smol
//! executor), Keepers over the simulator transport or a real server, the anchors' pools, and a
//! driver that runs `iters` operations spread over N concurrent tasks and returns the wall time.
//!
//! A real server is used when `BENCH_REDIS_PORT` names one on 127.0.0.1 (`scripts/bench.sh`
//! starts its own); without it only the simulator rows run.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use redis_keeper::config::DatabaseOverrides;
use redis_keeper::seams::smol::{SmolClock, SmolSpawn};
use redis_keeper::seams::tokio::{TokioClock, TokioSpawn};
use redis_keeper::seams::Runtime;
use redis_keeper::sim::{SimClock, SimRedis, Trace};
use redis_keeper::{Keeper, KeeperConfig, Rng};

/// Pool size for every pool in the comparison.
pub const POOL: u32 = 16;

/// The concurrency levels of the issue: one task, then 2, 16 and 64 concurrent tasks.
pub const TASKS: [usize; 4] = [1, 2, 16, 64];

/// The real server's port, if the bench script started one.
pub fn real_port() -> Option<u16> {
    std::env::var("BENCH_REDIS_PORT").ok()?.parse().ok()
}

pub fn real_url() -> Option<String> {
    real_port().map(|p| format!("redis://127.0.0.1:{p}/0"))
}

/// The multi-threaded tokio runtime with 2 workers (the machine has 2 cores).
pub fn tokio_rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// A smol executor run by 2 threads (smol's own global executor still runs the Keeper's and
/// redis-rs's background tasks, as it would in an application).
pub fn smol_ex() -> &'static smol::Executor<'static> {
    static EX: OnceLock<&'static smol::Executor<'static>> = OnceLock::new();
    EX.get_or_init(|| {
        let ex: &'static smol::Executor<'static> = Box::leak(Box::new(smol::Executor::new()));
        for i in 0..2 {
            std::thread::Builder::new()
                .name(format!("bench-smol-{i}"))
                .spawn(move || smol::block_on(ex.run(futures::future::pending::<()>())))
                .expect("smol worker");
        }
        ex
    })
}

/// Where an operation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rt {
    Tokio,
    Smol,
}

impl Rt {
    pub fn name(self) -> &'static str {
        match self {
            Rt::Tokio => "tokio",
            Rt::Smol => "smol",
        }
    }

    /// Runs a future to completion from the bench thread.
    pub fn block_on<F: Future>(self, fut: F) -> F::Output {
        match self {
            Rt::Tokio => tokio_rt().block_on(fut),
            Rt::Smol => smol::block_on(fut),
        }
    }

    /// Runs `iters` operations spread over `tasks` concurrent tasks on the runtime's workers and
    /// returns the wall time from the first spawn to the last completion. `task(n)` makes one
    /// task's future, which runs `n` operations.
    pub fn run<F, Fut>(self, tasks: usize, iters: u64, task: F) -> Duration
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let per = iters.div_ceil(tasks as u64).max(1);
        let started = Instant::now();
        match self {
            Rt::Tokio => {
                let rt = tokio_rt();
                let handles: Vec<_> = (0..tasks).map(|_| rt.spawn(task(per))).collect();
                rt.block_on(async {
                    for h in handles {
                        h.await.expect("bench task");
                    }
                });
            }
            Rt::Smol => {
                let ex = smol_ex();
                let handles: Vec<_> = (0..tasks).map(|_| ex.spawn(task(per))).collect();
                smol::block_on(async {
                    for h in handles {
                        h.await;
                    }
                });
            }
        }
        started.elapsed()
    }
}

/// Where connections go.
#[derive(Clone, Debug)]
pub enum Target {
    /// The in-memory server through the simulator transport (no virtual latency).
    Sim(SimRedis),
    /// A real redis-server on loopback.
    Real(u16),
}

impl Target {
    pub fn sim() -> Self {
        Target::Sim(SimRedis::new(
            SimClock::new(),
            Rng::new(7),
            Trace::hash_only(),
        ))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Target::Sim(_) => "sim",
            Target::Real(_) => "real",
        }
    }

    /// The Keeper runtime for `rt` whose transport reaches this target.
    pub fn runtime(&self, rt: Rt) -> Runtime {
        match (self, rt) {
            (Target::Sim(server), Rt::Tokio) => {
                let handle = tokio_rt().handle().clone();
                Runtime::new(
                    "tokio+sim",
                    Arc::new(TokioClock::new(handle.clone())),
                    Arc::new(TokioSpawn::new(handle)),
                    Arc::new(server.transport()),
                )
            }
            (Target::Sim(server), Rt::Smol) => Runtime::new(
                "smol+sim",
                Arc::new(SmolClock),
                Arc::new(SmolSpawn),
                Arc::new(server.transport()),
            ),
            (Target::Real(_), Rt::Tokio) => {
                let _guard = tokio_rt().enter();
                Runtime::tokio()
            }
            (Target::Real(_), Rt::Smol) => Runtime::smol(),
        }
    }

    /// A Keeper on `rt` with pools of [`POOL`], `extra` more databases (aliases) beside the 16
    /// canonical ones, and `tweak` applied to every database.
    pub fn keeper_with(
        &self,
        rt: Rt,
        extra: usize,
        tweak: impl FnOnce(DatabaseOverrides) -> DatabaseOverrides,
    ) -> Keeper {
        let mut config = KeeperConfig::default();
        if let Target::Real(port) = self {
            config = config.host("127.0.0.1").port(*port);
        }
        for i in 0..extra {
            config = config.database(format!("extra{i}"), (i % 16) as u8);
        }
        let config = config.configure_all(tweak);
        Keeper::builder(config)
            .runtime(self.runtime(rt))
            .env(HashMap::<String, String>::new())
            .seed(7)
            .build()
            .expect("keeper config")
    }

    pub fn keeper(&self, rt: Rt) -> Keeper {
        self.keeper_with(rt, 0, |d| d.max_connections(POOL))
    }

    /// A raw redis-rs multiplexed connection to db 0 through the same transport.
    pub fn raw_multiplexed(&self, rt: Rt) -> MultiplexedConnection {
        match self {
            Target::Sim(server) => {
                let stream = server.connect().expect("sim connect");
                let info = redis::RedisConnectionInfo::default();
                let config = AsyncConnectionConfig::new()
                    .set_response_timeout(None)
                    .set_connection_timeout(None);
                rt.block_on(async {
                    let (conn, driver) =
                        MultiplexedConnection::new_with_config(&info, stream, config)
                            .await
                            .expect("raw sim connection");
                    match rt {
                        Rt::Tokio => {
                            tokio_rt().spawn(driver);
                        }
                        Rt::Smol => smol::spawn(driver).detach(),
                    }
                    conn
                })
            }
            Target::Real(port) => {
                // redis-rs picks tokio for its own connect path; the handle is runtime-neutral
                // afterwards (its driver stays on the tokio runtime).
                let client =
                    redis::Client::open(format!("redis://127.0.0.1:{port}/0")).expect("client");
                tokio_rt()
                    .block_on(client.get_multiplexed_async_connection())
                    .expect("raw real connection")
            }
        }
    }
}

/// A Keeper of `config` on the bench's tokio runtime (no environment, a fixed seed).
pub fn tokio_keeper(config: KeeperConfig) -> Keeper {
    let _guard = tokio_rt().enter();
    Keeper::builder(config)
        .runtime(Runtime::tokio())
        .env(HashMap::<String, String>::new())
        .seed(7)
        .build()
        .expect("keeper config")
}

/// Runs `iters` GETs of `key` over `tasks` tasks on `rt`, each task on one shared handle of
/// `keeper`'s `main` taken once; the wall time.
pub fn shared_get_loop(
    rt: Rt,
    tasks: usize,
    iters: u64,
    keeper: &Keeper,
    key: &'static str,
) -> Duration {
    rt.run(tasks, iters, |n| {
        let keeper = keeper.clone();
        async move {
            let mut conn = keeper.get("main").await.expect("get");
            for _ in 0..n {
                let v: Option<String> = redis::AsyncCommands::get(&mut conn, key)
                    .await
                    .expect("GET");
                std::hint::black_box(v);
            }
        }
    })
}

/// Runs `iters` GETs of `key` over `tasks` tasks on `rt`, each task on its own clone of `raw`;
/// the wall time.
pub fn raw_get_loop(
    rt: Rt,
    tasks: usize,
    iters: u64,
    raw: &MultiplexedConnection,
    key: &'static str,
) -> Duration {
    rt.run(tasks, iters, |n| {
        let mut conn = raw.clone();
        async move {
            for _ in 0..n {
                let v: Option<String> = redis::AsyncCommands::get(&mut conn, key)
                    .await
                    .expect("GET");
                std::hint::black_box(v);
            }
        }
    })
}

/// Opens `n` exclusive connections at once and returns them all, leaving `n` idle.
pub fn warm_exclusive(keeper: &Keeper, rt: Rt, db: &str, n: usize) {
    rt.block_on(async {
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            held.push(keeper.get_exclusive(db).await.expect("exclusive"));
        }
    });
}

/// deadpool-redis pools: its default (PING + UNWATCH on every checkout) and the same manager
/// with the recycle check switched off (deadpool-redis has no switch; a wrapper skips it).
pub mod deadpool_anchor {
    use deadpool::managed::{self, Metrics, RecycleResult};
    use redis::aio::MultiplexedConnection;
    use redis::RedisError;

    pub type Default = deadpool_redis::Pool;
    pub type NoCheck = managed::Pool<NoCheckManager>;

    pub fn default_pool(url: &str, size: usize) -> Default {
        let mut cfg = deadpool_redis::Config::from_url(url);
        cfg.pool = Some(deadpool_redis::PoolConfig::new(size));
        cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .expect("deadpool")
    }

    pub fn no_check_pool(url: &str, size: usize) -> NoCheck {
        let manager = NoCheckManager(deadpool_redis::Manager::new(url).expect("manager"));
        managed::Pool::builder(manager)
            .max_size(size)
            .build()
            .expect("deadpool")
    }

    /// deadpool-redis's manager, connecting as usual but recycling without a round trip.
    pub struct NoCheckManager(deadpool_redis::Manager);

    impl managed::Manager for NoCheckManager {
        type Type = MultiplexedConnection;
        type Error = RedisError;

        async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
            self.0.create().await
        }

        async fn recycle(
            &self,
            _: &mut MultiplexedConnection,
            _: &Metrics,
        ) -> RecycleResult<RedisError> {
            Ok(())
        }
    }
}

/// bb8-redis pools: its default (`test_on_check_out`: PING on every checkout) and with it off.
pub fn bb8_pool(
    url: &str,
    size: u32,
    test_on_check_out: bool,
) -> bb8_redis::bb8::Pool<bb8_redis::RedisConnectionManager> {
    let manager = bb8_redis::RedisConnectionManager::new(url).expect("bb8 manager");
    tokio_rt()
        .block_on(
            bb8_redis::bb8::Pool::builder()
                .max_size(size)
                .test_on_check_out(test_on_check_out)
                .build(manager),
        )
        .expect("bb8 pool")
}

/// r2d2 over redis's `r2d2` feature (the blocking anchor).
pub fn r2d2_pool(url: &str, size: u32, test_on_check_out: bool) -> r2d2::Pool<redis::Client> {
    r2d2::Pool::builder()
        .max_size(size)
        .test_on_check_out(test_on_check_out)
        .build(redis::Client::open(url).expect("client"))
        .expect("r2d2 pool")
}

/// Runs `iters` blocking operations spread over `threads` OS threads; `task(n)` runs `n` of them.
pub fn run_threads<F>(threads: usize, iters: u64, task: F) -> Duration
where
    F: Fn(u64) + Clone + Send + 'static,
{
    let per = iters.div_ceil(threads as u64).max(1);
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let task = task.clone();
            std::thread::spawn(move || task(per))
        })
        .collect();
    for h in handles {
        h.join().expect("bench thread");
    }
    started.elapsed()
}
