//! The async helpers of the real-server suites (`real_redis.rs`, `fault_suite.rs`): a Keeper
//! wired to a test server with small, fast policies, bounded calls, deadline polling, and the
//! checks that a failure is one of the typed ones.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use redis_keeper::seams::{timeout_at, Runtime};
use redis_keeper::{Error, Keeper, KeeperConfig};

use super::redis_server::RedisServer;

/// Upper bound on any single Keeper call in these tests, so a hang fails instead of stalling.
pub const CALL_LIMIT: Duration = Duration::from_secs(30);
/// `max_connections` of every database in [`config_for`].
pub const MAX_CONNECTIONS: u32 = 4;

/// Small, fast policies for a loopback server: sub-second timeouts and retry waits.
pub fn config_for(server: &RedisServer) -> KeeperConfig {
    fast_policies(
        KeeperConfig::default()
            .host("127.0.0.1")
            .port(server.port()),
    )
}

/// `config` with the small, fast policies of [`config_for`] (and no address of its own).
pub fn fast_policies(config: KeeperConfig) -> KeeperConfig {
    config.configure_all(|d| {
        d.max_connections(MAX_CONNECTIONS)
            .shared_connections(2)
            .connect_timeout(Duration::from_millis(500))
            .response_timeout(Duration::from_secs(2))
            .retry_multiplier(Duration::from_millis(100))
            .retry_min(Duration::from_millis(100))
            .retry_max(Duration::from_millis(400))
            .retry_attempts(5)
            .breaker_open_for(Duration::from_millis(500))
            .loading_poll_interval(Duration::from_millis(200))
            .loading_timeout(Duration::from_secs(20))
    })
}

pub fn keeper(rt: &Runtime, config: KeeperConfig) -> Keeper {
    Keeper::builder(config)
        .runtime(rt.clone())
        .env(HashMap::<String, String>::new())
        .seed(7)
        .build()
        .expect("valid config")
}

pub async fn sleep(rt: &Runtime, d: Duration) {
    let clock = rt.clock();
    clock.sleep_until(clock.now() + d).await;
}

/// `fut`, failing the test if it takes longer than [`CALL_LIMIT`].
pub async fn bounded<F: Future>(rt: &Runtime, what: &str, fut: F) -> F::Output {
    let clock = rt.clock();
    timeout_at(&**clock, clock.now() + CALL_LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {CALL_LIMIT:?}"))
}

/// [`bounded`], and on a timeout the failure message carries `diagnose()` (the Keeper's
/// stats, say): what the call was waiting on.
pub async fn bounded_or_explain<F: Future>(
    rt: &Runtime,
    what: &str,
    fut: F,
    diagnose: impl FnOnce() -> String,
) -> F::Output {
    let clock = rt.clock();
    match timeout_at(&**clock, clock.now() + CALL_LIMIT, fut).await {
        Ok(output) => output,
        Err(_) => panic!(
            "{what} did not finish within {CALL_LIMIT:?}: {}",
            diagnose()
        ),
    }
}

/// Polls `check` (with a short real sleep between polls) until it gives a value or `limit` ends.
pub async fn eventually<T, F, Fut>(rt: &Runtime, limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        sleep(rt, Duration::from_millis(25)).await;
    }
}

/// Runs blocking `work` on a thread and awaits it without blocking the executor.
pub async fn on_thread<T: Send + 'static>(
    rt: &Runtime,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let handle = std::thread::spawn(work);
    eventually(rt, CALL_LIMIT, "blocking helper", || {
        let done = handle.is_finished();
        async move { done.then_some(()) }
    })
    .await;
    handle.join().expect("helper thread")
}

/// A failed command as the caller sees it: a transport error (I/O, timeout, dropped
/// connection) or the Keeper's own typed refusal passed through redis-rs's error type.
pub fn assert_typed_command_error(e: &redis::RedisError) {
    let keeper_refusal = matches!(
        redis_keeper::Error::from(e.clone()),
        redis_keeper::Error::CircuitOpen { .. }
            | redis_keeper::Error::NotReady { .. }
            | redis_keeper::Error::PoolTimeout { .. }
    );
    assert!(
        e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || keeper_refusal,
        "untyped command error: {e:?}"
    );
}

/// A failed `get` while the server is away: the breaker, the connect schedule or a transport error.
pub fn assert_typed_get_error(e: &Error) {
    assert!(
        matches!(
            e,
            Error::CircuitOpen { .. } | Error::Connect { .. } | Error::Redis(_)
        ),
        "unexpected error from get: {e:?}"
    );
    if let Error::Redis(inner) = e {
        assert_typed_command_error(inner);
    }
}

/// The synchronous twin of [`eventually`]: polls `check` every 10 ms until it gives a value or
/// `limit` ends (then fails the test naming `what`).
pub fn wait_until<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
