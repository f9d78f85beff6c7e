//! `PooledConnection`: the handle `Keeper::get` and `Keeper::get_exclusive` return. It implements
//! redis-rs's `aio::ConnectionLike`, so every `AsyncCommands` method works on it.

use std::fmt;
use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::database::{all_readonly, BlockTime, CommandKind, Database, RedisConn};
use crate::error::Error;
use crate::pool::Lease;
use crate::stats::DbCounters;

/// A connection to one named database. Dropping it returns it to its pool.
///
/// From [`Keeper::get`](crate::Keeper::get) it is a share of a multiplexed connection: cheap,
/// concurrent, and it refuses commands that would change state for every other user (SELECT,
/// WATCH/MULTI, SUBSCRIBE, blocking pops, CLIENT SETNAME, AUTH, …) with an error that points to
/// [`Keeper::get_exclusive`](crate::Keeper::get_exclusive), whose connections are lent to one holder.
/// An atomic pipeline (`redis::pipe().atomic()`) is sent as one unit and works on both.
///
/// ```no_run
/// # async fn demo(keeper: redis_keeper::Keeper) -> Result<(), redis_keeper::Error> {
/// use redis::AsyncCommands;
/// let mut conn = keeper.get("main").await?;
/// let _: () = conn.set("greeting", "hello").await?;
/// let v: String = conn.get("greeting").await?;
/// assert_eq!(v, "hello");
/// # Ok(()) }
/// ```
pub struct PooledConnection {
    db: Arc<Database>,
    handle: Handle,
}

enum Handle {
    /// A share: each command goes to the database's next ready multiplexed connection, so the
    /// handle itself holds none (getting and dropping one touches no connection).
    Shared,
    Exclusive(Exclusive),
    /// A Redis Cluster database: each command is routed by slot through the cluster
    /// connection.
    #[cfg(feature = "cluster")]
    Cluster,
}

struct Exclusive {
    lease: Lease<RedisConn>,
    session: Session,
}

/// Connection state an exclusive holder may have changed; any of it keeps the connection from
/// being idled for the next holder.
#[derive(Default)]
struct Session {
    selected_other_db: bool,
    in_transaction: bool,
    watching: bool,
    changed_state: bool,
    /// A command was sent and its future dropped before the reply: the reply may still arrive.
    in_flight: bool,
}

impl Session {
    fn is_clean(&self) -> bool {
        !(self.holds_state() || self.in_flight)
    }

    /// Whether the holder changed the connection's state (a later holder would see it).
    fn holds_state(&self) -> bool {
        self.selected_other_db || self.in_transaction || self.watching || self.changed_state
    }

    /// Notes what command `name` (with its first argument `sub`) does to the connection.
    fn observe(&mut self, name: &[u8], sub: Option<&[u8]>) {
        let mut buf = [0u8; NAME_BUF];
        match upper_in(name, &mut buf).unwrap_or_default() {
            "SELECT" => self.selected_other_db = true,
            "MULTI" => self.in_transaction = true,
            "EXEC" | "DISCARD" => {
                self.in_transaction = false;
                self.watching = false;
            }
            "WATCH" => self.watching = true,
            "UNWATCH" => self.watching = false,
            "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" | "MONITOR" | "AUTH" | "HELLO" | "RESET"
            | "READONLY" | "READWRITE" => self.changed_state = true,
            // Only some CLIENT subcommands change the connection (ID, INFO, LIST, … do not).
            "CLIENT"
                if sub.is_none_or(|sub| {
                    let mut buf = [0u8; NAME_BUF];
                    upper_in(sub, &mut buf).is_some_and(client_changes_state)
                }) =>
            {
                self.changed_state = true;
            }
            _ => {}
        }
    }
}

impl PooledConnection {
    pub(crate) fn shared(db: Arc<Database>) -> Self {
        DbCounters::bump(&db.counters().live_handles);
        Self {
            db,
            handle: Handle::Shared,
        }
    }

    /// A handle on a Redis Cluster database.
    #[cfg(feature = "cluster")]
    pub(crate) fn cluster(db: Arc<Database>) -> Self {
        DbCounters::bump(&db.counters().live_handles);
        Self {
            db,
            handle: Handle::Cluster,
        }
    }

    pub(crate) fn exclusive(db: Arc<Database>, lease: Lease<RedisConn>) -> Self {
        DbCounters::bump(&db.counters().live_handles);
        Self {
            db,
            handle: Handle::Exclusive(Exclusive {
                lease,
                session: Session::default(),
            }),
        }
    }

    /// The name of the database this connection serves.
    pub fn database(&self) -> &str {
        self.db.name()
    }

    /// The Redis db number this connection is on.
    pub fn db_number(&self) -> u8 {
        self.db.settings().db
    }

    /// The settings of the database this connection serves.
    pub(crate) fn settings(&self) -> &crate::config::DatabaseSettings {
        self.db.settings()
    }

    /// Whether this is an exclusive (lent to one holder) connection.
    pub fn is_exclusive(&self) -> bool {
        matches!(self.handle, Handle::Exclusive(_))
    }

    /// Whether the connection can still be used: an exclusive one that failed (and will be
    /// closed) cannot; a shared handle replaces a broken connection on its next command.
    pub(crate) fn is_usable(&self) -> bool {
        match &self.handle {
            Handle::Shared => true,
            #[cfg(feature = "cluster")]
            Handle::Cluster => true,
            Handle::Exclusive(ex) => !ex.lease.is_discarded(),
        }
    }

    /// Runs `req` under the database's policies. For a Sentinel-backed database it first
    /// waits out a failover hold, and a request every reply of which is `READONLY` (it reached
    /// a stale master, nothing ran) is sent once more, to the master the sentinels name now;
    /// a second `READONLY` is the reply.
    async fn run(&mut self, req: CommandKind<'_>) -> Result<crate::database::Reply, Error> {
        if self.db.is_closed() {
            return Err(self.db.failed(Error::Closed));
        }
        self.db.await_master().await;
        let (reply, epoch) = self.run_once(req).await?;
        if !all_readonly(&reply) || !self.db.readonly_seen(epoch) || !self.can_resend(req) {
            return Ok(reply);
        }
        self.db.await_master().await;
        let (reply, epoch) = self.run_once(req).await?;
        if all_readonly(&reply) {
            let _counted = self.db.readonly_seen(epoch); // the reply stands: no second resend
        }
        Ok(reply)
    }

    /// Whether a request refused with `READONLY` may go again on another connection: not on
    /// an exclusive handle whose state (a transaction, WATCH, SELECT) lives on this one, and
    /// not a script or function (it may have published or called out before its write failed).
    fn can_resend(&self, req: CommandKind<'_>) -> bool {
        let stateless = match &self.handle {
            Handle::Shared => true,
            #[cfg(feature = "cluster")]
            Handle::Cluster => true,
            Handle::Exclusive(ex) => !ex.session.holds_state(),
        };
        stateless && !runs_script(req)
    }

    /// Runs `req` once; the reply and the backend epoch of the connection that answered it.
    async fn run_once(
        &mut self,
        req: CommandKind<'_>,
    ) -> Result<(crate::database::Reply, u64), Error> {
        let db = &self.db;
        match &mut self.handle {
            #[cfg(feature = "cluster")]
            Handle::Cluster => {
                refuse_on_cluster(db, req).map_err(|e| db.failed(e))?;
                let cluster = db.cluster().expect("a cluster handle is only made for one");
                // No Sentinel, so no READONLY resend by the caller (the epoch is unused); the
                // cluster loop waits a READONLY out itself.
                cluster.run(db, req).await.map(|reply| (reply, 0))
            }
            Handle::Shared => {
                refuse_on_shared(req)?;
                // Once more if the master moved between the pick and the send (not sent).
                let mut result = Self::run_shared(db, req).await;
                if matches!(result, Err(Error::MasterChanged { .. })) {
                    result = Self::run_shared(db, req).await;
                }
                result
            }
            Handle::Exclusive(ex) => {
                refuse_subscribe(req)?;
                let link = ex.lease.conn_mut().link();
                let cancelled = ex.session.in_flight && link.is_closed();
                if cancelled || link.is_stale() {
                    // The last command's future was dropped while it blocked, which closed the
                    // connection, or the master moved: carry on with a fresh connection, unless
                    // state was lost with it.
                    Box::pin(ex.replace(db, cancelled))
                        .await
                        .map_err(|e| db.failed(e))?;
                }
                observe_commands(&mut ex.session, req);
                ex.session.in_flight = true;
                let (link, mc) = ex.lease.conn_mut().parts_mut();
                let epoch = link.epoch();
                let block = BlockTime::of(req);
                let result = db.execute(link, mc, req, block).await;
                ex.session.in_flight = false;
                result.map(|reply| (reply, epoch)).map_err(|e| {
                    if e.poisoned {
                        ex.lease.discard();
                    }
                    e.error
                })
            }
        }
    }

    /// One request on a shared connection: spread over the database's shared connections,
    /// replacing a broken one.
    async fn run_shared(
        db: &Arc<Database>,
        req: CommandKind<'_>,
    ) -> Result<(crate::database::Reply, u64), Error> {
        let conn = match db.pick_ready_shared() {
            Some(conn) => conn,
            // Boxed: the rare (re)connect would otherwise size every command's future.
            None => Box::pin(db.shared_connection())
                .await
                .map_err(|e| db.failed(e))?,
        };
        let mut mc = conn.conn().multiplexed().clone();
        let epoch = conn.conn().link().epoch();
        db.execute(conn.conn().link(), &mut mc, req, BlockTime::None)
            .await
            .map(|reply| (reply, epoch))
            .map_err(|e| {
                if e.poisoned {
                    conn.mark_broken();
                }
                e.error
            })
    }
}

impl Exclusive {
    /// Replaces a connection closed under a cancelled blocking command (`cancelled`), or one
    /// to a master that moved, with a fresh one from the pool. A transaction, WATCH, SELECT or
    /// other state on the old connection is gone: then the handle fails instead, since carrying
    /// on would run commands without it.
    async fn replace(&mut self, db: &Arc<Database>, cancelled: bool) -> Result<(), Error> {
        self.lease.discard();
        if self.session.holds_state() {
            if !cancelled {
                return Err(Error::MasterChanged {
                    db: db.name().to_owned(),
                });
            }
            return Err(Error::Redis(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                format!(
                    "a cancelled blocking command closed this connection to database `{}`; \
                     its transaction, WATCH or SELECT state is gone: get a new connection",
                    db.name()
                ),
            ))));
        }
        let lease = match db.try_checkout_ready() {
            Some(lease) => lease,
            None => db.checkout_exclusive().await?,
        };
        self.lease = lease;
        self.session = Session::default();
        Ok(())
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        self.db
            .counters()
            .live_handles
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Handle::Exclusive(ex) = &mut self.handle {
            if ex.lease.conn_mut().link().is_stale() {
                ex.lease.discard(); // opened in an older backend epoch: never re-idled
            }
            if !ex.session.is_clean() && !ex.lease.is_discarded() {
                crate::database::keeper_event!(
                    self.db,
                    DEBUG,
                    "closing a connection whose state was changed"
                );
                ex.lease.discard();
            }
        }
    }
}

impl fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("database", &self.db.name())
            .field("exclusive", &self.is_exclusive())
            .finish()
    }
}

impl ConnectionLike for PooledConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match self.run(CommandKind::Single(cmd)).await {
                Ok(crate::database::Reply::One(v)) => Ok(v),
                Ok(crate::database::Reply::Many(mut vs)) => Ok(vs.pop().unwrap_or(Value::Nil)),
                Err(e) => Err(e.into_redis()),
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match self.run(CommandKind::Pipeline(cmd, offset, count)).await {
                Ok(crate::database::Reply::Many(vs)) => Ok(vs),
                Ok(crate::database::Reply::One(v)) => Ok(vec![v]),
                Err(e) => Err(e.into_redis()),
            }
        })
    }

    fn get_db(&self) -> i64 {
        i64::from(self.db.settings().db)
    }
}

/// Whether a request runs a script or a function (`EVAL`, `EVALSHA`, `FCALL` and their `_RO`
/// forms): a `READONLY` reply from it does not mean nothing ran.
fn runs_script(req: CommandKind<'_>) -> bool {
    let script = |cmd: &Cmd| match cmd.args_iter().next() {
        Some(redis::Arg::Simple(name)) => {
            let name = name.to_ascii_uppercase();
            name.starts_with(b"EVAL") || name.starts_with(b"FCALL")
        }
        _ => false,
    };
    match req {
        CommandKind::Single(cmd) => script(cmd),
        CommandKind::Pipeline(p, _, _) => p.cmd_iter().any(script),
    }
}

/// Notes in `session` what each command of a request does to the connection.
fn observe_commands(session: &mut Session, req: CommandKind<'_>) {
    match req {
        CommandKind::Single(cmd) => observe_command(session, cmd),
        // redis-rs adds MULTI and EXEC when it packs an atomic pipeline; they are not among
        // its commands, so they are observed here: the EXEC ends the transaction and the WATCH.
        CommandKind::Pipeline(p, _, _) if p.is_transaction() => {
            session.observe(b"MULTI", None);
            p.cmd_iter().for_each(|cmd| observe_command(session, cmd));
            session.observe(b"EXEC", None);
        }
        CommandKind::Pipeline(p, _, _) => {
            p.cmd_iter().for_each(|cmd| observe_command(session, cmd));
        }
    }
}

/// Notes in `session` what `cmd` does to the connection.
fn observe_command(session: &mut Session, cmd: &Cmd) {
    let mut args = cmd.args_iter();
    if let Some(redis::Arg::Simple(name)) = args.next() {
        let sub = match args.next() {
            Some(redis::Arg::Simple(sub)) => Some(sub),
            _ => None,
        };
        session.observe(name, sub);
    }
}

/// Whether `CLIENT <sub>` (upper case) changes state a later holder of the connection would see.
fn client_changes_state(sub: &str) -> bool {
    matches!(
        sub,
        "SETNAME" | "SETINFO" | "REPLY" | "TRACKING" | "CACHING" | "NO-EVICT" | "NO-TOUCH"
    )
}

/// Refuses, on a shared connection, commands that change state for every user of it.
fn refuse_on_shared(req: CommandKind<'_>) -> Result<(), Error> {
    match req {
        CommandKind::Single(cmd) => refuse_command(cmd),
        CommandKind::Pipeline(p, _, _) => p.cmd_iter().try_for_each(refuse_command),
    }
}

fn refuse_command(cmd: &Cmd) -> Result<(), Error> {
    match refused_name(cmd) {
        Some(name) if is_subscribe(&name) => Err(Error::NeedsSubscriber { command: name }),
        Some(name) => Err(Error::NeedsExclusive { command: name }),
        None => Ok(()),
    }
}

/// Refuses, on a Redis Cluster database, the commands a shared connection refuses: there is
/// no exclusive connection to send them on instead (they need one node's connection to
/// themselves: a transaction, a blocking pop, a subscription, connection state).
#[cfg(feature = "cluster")]
fn refuse_on_cluster(db: &Database, req: CommandKind<'_>) -> Result<(), Error> {
    let check = |cmd: &Cmd| match refused_name(cmd) {
        Some(command) => Err(Error::NotOnCluster {
            db: db.name().to_owned(),
            what: format!("`{command}`"),
        }),
        None => Ok(()),
    };
    match req {
        CommandKind::Single(cmd) => check(cmd),
        CommandKind::Pipeline(p, _, _) => p.cmd_iter().try_for_each(check),
    }
}

/// The name of a command a shared connection refuses (it changes state for every user of
/// the connection, or blocks it), upper-cased.
fn refused_name(cmd: &Cmd) -> Option<String> {
    let mut args = cmd.args_iter().filter_map(|a| match a {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let first = args.next()?;
    // No refused name is shorter or longer (GET, SET, DEL, TTL… pass without a look).
    if !REFUSED_LEN.contains(&first.len()) {
        return None;
    }
    let mut buf = [0u8; NAME_BUF];
    let name = upper_in(first, &mut buf)?;
    let refused = match name {
        "SELECT" | "WATCH" | "UNWATCH" | "MULTI" | "EXEC" | "DISCARD" | "SUBSCRIBE"
        | "PSUBSCRIBE" | "SSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "SUNSUBSCRIBE"
        | "MONITOR" | "BLPOP" | "BRPOP" | "BRPOPLPUSH" | "BLMOVE" | "BLMPOP" | "BZPOPMIN"
        | "BZPOPMAX" | "BZMPOP" | "WAIT" | "WAITAOF" | "AUTH" | "HELLO" | "RESET" | "QUIT"
        | "READONLY" | "READWRITE" | "ASKING" => true,
        "CLIENT" => {
            let mut sub = [0u8; NAME_BUF];
            args.next()
                .and_then(|a| upper_in(a, &mut sub))
                .is_some_and(client_changes_state)
        }
        "XREAD" | "XREADGROUP" => args.any(|a| a.eq_ignore_ascii_case(b"BLOCK")),
        _ => false,
    };
    refused.then(|| name.to_string())
}

/// Whether `name` (upper case) starts a subscription: it needs a `Subscriber`.
fn is_subscribe(name: &str) -> bool {
    matches!(name, "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE")
}

/// Refuses, on an exclusive connection, the commands that start a subscription: on a
/// multiplexed RESP2 connection pushed messages would arrive as later commands' replies.
fn refuse_subscribe(req: CommandKind<'_>) -> Result<(), Error> {
    let check = |cmd: &Cmd| match cmd.args_iter().next() {
        // SUBSCRIBE is 9 bytes, PSUBSCRIBE and SSUBSCRIBE 10: GET, SET, … pass without a copy.
        Some(redis::Arg::Simple(first)) if (9..=10).contains(&first.len()) => {
            let mut buf = [0u8; NAME_BUF];
            match upper_in(first, &mut buf) {
                Some(name) if is_subscribe(name) => Err(Error::NeedsSubscriber {
                    command: name.to_string(),
                }),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    };
    match req {
        CommandKind::Single(cmd) => check(cmd),
        CommandKind::Pipeline(p, _, _) => p.cmd_iter().try_for_each(check),
    }
}

/// Longest command or subcommand name checked here, with room to spare.
const NAME_BUF: usize = 16;

/// The lengths of the command names [`refuse_command`] refuses (EXEC … PUNSUBSCRIBE).
const REFUSED_LEN: std::ops::RangeInclusive<usize> = 4..=12;

/// `name` upper-cased into `buf` without allocating, when it fits and is UTF-8.
fn upper_in<'b>(name: &[u8], buf: &'b mut [u8; NAME_BUF]) -> Option<&'b str> {
    let out = buf.get_mut(..name.len())?;
    out.copy_from_slice(name);
    out.make_ascii_uppercase();
    std::str::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
