//! The process-wide Keeper behind `get_redis_client`, the seed's canonical entry point.

use std::sync::OnceLock;

use crate::blocking::BlockingConnection;
use crate::config::KeeperConfig;
use crate::connection::PooledConnection;
use crate::error::Error;
use crate::keeper::Keeper;

static GLOBAL: OnceLock<Keeper> = OnceLock::new();

/// The process-wide Keeper, built on first use from [`KeeperConfig::discover`] on the runtime
/// the first caller runs on, unless [`init_global`] set it before.
///
/// After [`Keeper::close`] on it, every later call through it fails with `Error::Closed`: the
/// process-wide Keeper is closed for the rest of the process (close it at shutdown).
pub fn global_keeper() -> Result<&'static Keeper, Error> {
    if let Some(keeper) = GLOBAL.get() {
        return Ok(keeper);
    }
    let keeper = Keeper::new(KeeperConfig::discover()?)?;
    // Two first callers may race: one Keeper wins; the other is dropped unused, which stops
    // its background tasks.
    Ok(GLOBAL.get_or_init(|| keeper))
}

/// Sets the process-wide Keeper from code, before its first use: the Keeper built from
/// `config` on the runtime of the caller. Fails with `Error::GlobalAlreadySet` once the
/// process-wide Keeper exists (set here or built on first use), and with the config's error
/// when it is invalid.
///
/// ```no_run
/// # fn demo() -> Result<(), redis_keeper::Error> {
/// use redis_keeper::{init_global, KeeperConfig};
/// init_global(KeeperConfig::default().host("127.0.0.1").port(6380))?;
/// let mut conn = redis_keeper::get_redis_client_blocking("main")?;
/// # Ok(()) }
/// ```
pub fn init_global(config: KeeperConfig) -> Result<&'static Keeper, Error> {
    init_global_with(Keeper::new(config)?)
}

/// Sets `keeper` (built with [`Keeper::builder`], for a chosen runtime or registry) as the
/// process-wide Keeper, before its first use. Fails with `Error::GlobalAlreadySet` once it
/// exists.
pub fn init_global_with(keeper: Keeper) -> Result<&'static Keeper, Error> {
    let mut fresh = Some(keeper);
    let set = GLOBAL.get_or_init(|| fresh.take().expect("taken once"));
    match fresh {
        None => Ok(set),
        Some(_unused) => Err(Error::GlobalAlreadySet),
    }
}

/// A shared connection to database `db` from the process-wide Keeper (the seed's
/// `get_redis_client(async_client=True, database=…)`). Errors are typed, never `None`.
///
/// ```no_run
/// # async fn demo() -> Result<(), redis_keeper::Error> {
/// use redis::AsyncCommands;
/// let mut conn = redis_keeper::get_redis_client("main").await?;
/// let _: () = conn.set("k", "v").await?;
/// # Ok(()) }
/// ```
pub async fn get_redis_client(db: impl AsRef<str>) -> Result<PooledConnection, Error> {
    global_keeper()?.get(db).await
}

/// An exclusive blocking connection to database `db` from the process-wide Keeper (the seed's
/// `get_redis_client(async_client=False, database=…)`), for sync code: no runtime needed.
///
/// ```no_run
/// # fn demo() -> Result<(), redis_keeper::Error> {
/// use redis::Commands;
/// let mut conn = redis_keeper::get_redis_client_blocking("main")?;
/// let _: () = conn.set("k", "v")?;
/// # Ok(()) }
/// ```
pub fn get_redis_client_blocking(db: impl AsRef<str>) -> Result<BlockingConnection, Error> {
    global_keeper()?.get_blocking(db)
}
