//! Running user commands through a database's policies: readiness first, then the breaker, the
//! connection's response-timeout watchdog, and outcome reporting. A command that got `-LOADING` was not
//! executed, so it is sent again once the server is ready; nothing else is ever resent.

use std::io;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, Value};
use tracing::level_filters::LevelFilter;
use tracing::Instrument;

use super::block_time::BlockTime;
use super::conn::Link;
use super::request::{CommandKind, Reply};
use super::Database;
use crate::classify::classify;
use crate::error::Error;
use crate::policy::FailureKind;
use crate::seams::timeout_at;
use crate::stats::ErrorLabel;

/// A failed request, and whether its connection must be closed.
pub(crate) struct CommandError {
    pub(crate) error: Error,
    pub(crate) poisoned: bool,
}

impl From<Error> for CommandError {
    fn from(error: Error) -> Self {
        Self {
            error,
            poisoned: false,
        }
    }
}

/// How many times a request rejected with `LOADING` is sent again (each after readiness).
const MAX_LOADING_RESENDS: usize = 8;

impl Database {
    /// Runs `req` on the connection of `link`, through `mc` (a handle to that connection),
    /// under the database's policies. A request that blocks on the server (`block`, see
    /// [`BlockTime`]) is answered within its block time plus the response timeout, or never
    /// times out when it blocks until data arrives.
    ///
    /// With the Keeper's `log_level` at `debug` and a subscriber listening, the request runs in
    /// a `command` span (`db`, `command`: the name, or `PIPELINE`; never a value).
    pub(crate) async fn execute(
        &self,
        link: &Link,
        mc: &mut MultiplexedConnection,
        req: CommandKind<'_>,
        block: BlockTime,
    ) -> Result<Reply, CommandError> {
        if self.settings().log_commands {
            log_request(self.name(), req);
        }
        let run = self.run(link, mc, req, block);
        if self.log_level() >= LevelFilter::DEBUG && tracing::enabled!(tracing::Level::DEBUG) {
            let span = tracing::debug_span!(
                "command",
                db = %self.name(),
                command = %request_name(req)
            );
            return run.instrument(span).await;
        }
        run.await
    }

    /// [`Database::execute`] without its span.
    async fn run(
        &self,
        link: &Link,
        mc: &mut MultiplexedConnection,
        req: CommandKind<'_>,
        block: BlockTime,
    ) -> Result<Reply, CommandError> {
        for _ in 0..=MAX_LOADING_RESENDS {
            if self.admission().is_loading() {
                // Boxed: the rare wait would otherwise size every command's future.
                if let Err(e) = Box::pin(self.connector().wait_ready(mc)).await {
                    // A probe that timed out or hit a dead socket leaves the connection unusable.
                    let poisoned = e
                        .failure_kind()
                        .is_some_and(FailureKind::poisons_connection);
                    return Err(CommandError {
                        error: self.failed(e),
                        poisoned,
                    });
                }
            }
            // A failover announced since the handle's own check (a connect or a readiness
            // wait may have come between): wait it out here, right before the send.
            self.await_master().await;
            if link.is_stale() {
                // The master moved (a Sentinel switch) since this connection was picked: it
                // goes to the old master, so the request is not sent on it.
                return Err(CommandError {
                    error: Error::MasterChanged {
                        db: self.name().to_owned(),
                    },
                    poisoned: true,
                });
            }
            let permit = self.admission().permit().map_err(|e| self.failed(e))?;
            let started = self.now();
            let result = match block {
                BlockTime::None => self.send_watched(link, mc, req, started).await,
                blocks => Box::pin(self.send_blocking(link, mc, req, started, blocks)).await,
            };
            let now = self.now();
            match result {
                Ok(reply) if all_loading(&reply) => {
                    self.admission().report(permit, true);
                    self.admission().enter_loading();
                }
                Ok(reply) => {
                    self.admission().report(permit, true);
                    let error_reply = error_reply_label(&reply);
                    self.counters()
                        .record_reply(now.saturating_duration_since(started), error_reply);
                    if error_reply.is_none() {
                        self.admission().mark_ready();
                    }
                    return Ok(reply);
                }
                Err(err) => {
                    let kind = classify(&err);
                    if kind == FailureKind::Loading {
                        self.admission().report(permit, true);
                        self.admission().enter_loading();
                        continue;
                    }
                    self.admission()
                        .report_on(link, permit, !kind.trips_breaker());
                    if kind.poisons_connection() {
                        keeper_event!(self, WARN, error = %err, "connection failed; closing it");
                    }
                    return Err(CommandError {
                        error: self.failed(Error::Redis(err)),
                        poisoned: kind.poisons_connection(),
                    });
                }
            }
        }
        Err(CommandError::from(self.failed(Error::NotReady {
            db: self.name().to_string(),
            waited: self.settings().readiness.loading_timeout,
        })))
    }

    /// Sends `req` with the connection's watchdog timing it out at the response timeout.
    async fn send_watched(
        &self,
        link: &Link,
        mc: &mut MultiplexedConnection,
        req: CommandKind<'_>,
        started: std::time::Instant,
    ) -> redis::RedisResult<Reply> {
        // The connection's watchdog times the command out; no timer is armed for it here.
        let ticket = link.watch(started + self.settings().response_timeout, self.runtime());
        match send(mc, req).await {
            // The watchdog aborted the connection under this command: its deadline (or an
            // older command's, whose connection it shared) passed without a reply.
            Err(_) if ticket.timed_out() => {
                Err(self.no_reply_within(self.settings().response_timeout))
            }
            other => other,
        }
    }

    /// Sends a request that blocks on the server (on an exclusive connection, the only kind
    /// that takes one), with its own deadline: its block time plus the response timeout, none
    /// when it blocks until data arrives. When its caller stops waiting (the future is dropped)
    /// or the deadline passes, the connection is closed at once: the server then unblocks the
    /// client instead of popping an element for a reply nobody would read, and no late reply
    /// can reach the connection's next user.
    async fn send_blocking(
        &self,
        link: &Link,
        mc: &mut MultiplexedConnection,
        req: CommandKind<'_>,
        started: std::time::Instant,
        block: BlockTime,
    ) -> redis::RedisResult<Reply> {
        let mut on_drop = CloseUnlessAnswered(Some(link));
        let result = match block {
            BlockTime::For(blocks) => {
                let limit = blocks.saturating_add(self.settings().response_timeout);
                let deadline = started.checked_add(limit);
                match deadline {
                    Some(deadline) => {
                        timeout_at(&**self.runtime().clock(), deadline, send(mc, req))
                            .await
                            .unwrap_or_else(|_| Err(self.no_reply_within(limit)))
                    }
                    None => send(mc, req).await,
                }
            }
            BlockTime::Forever | BlockTime::None => send(mc, req).await,
        };
        // Answered (a reply, even an error reply): keep the connection. A transport failure or
        // the deadline: close it now.
        if result
            .as_ref()
            .map_or_else(|e| !classify(e).poisons_connection(), |_| true)
        {
            on_drop.0 = None;
        }
        result
    }

    /// The error of a request (or a subscriber's command) unanswered within `limit`.
    pub(crate) fn no_reply_within(&self, limit: std::time::Duration) -> redis::RedisError {
        redis::RedisError::from(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no reply within {limit:?} from database `{}`", self.name()),
        ))
    }

    /// Counts a failed operation and remembers its error.
    pub(crate) fn failed(&self, e: Error) -> Error {
        self.counters().record_failure(&e);
        self.record_error(&e);
        e
    }
}

/// A command's name, upper-cased (`PIPELINE` for a pipeline): never an argument.
fn request_name(req: CommandKind<'_>) -> String {
    match req {
        CommandKind::Single(cmd) => command_name(cmd),
        CommandKind::Pipeline(..) => "PIPELINE".to_owned(),
    }
}

/// The first argument of `cmd`, upper-cased.
fn command_name(cmd: &Cmd) -> String {
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).to_ascii_uppercase(),
        _ => String::from("(cursor)"),
    }
}

/// YAML `log_commands`: one `debug` event per command with the database, the command's name and
/// its argument count, never a value (an `AUTH` or `HELLO` shows no more than any other).
/// Emitted whatever the Keeper's `log_level`: the user asked for these events by name.
fn log_request(db: &str, req: CommandKind<'_>) {
    let log = |cmd: &Cmd| {
        let args = cmd.args_iter().count().saturating_sub(1);
        tracing::debug!(db = %db, command = %command_name(cmd), args, "command");
    };
    match req {
        CommandKind::Single(cmd) => log(cmd),
        CommandKind::Pipeline(p, _, _) => p.cmd_iter().for_each(log),
    }
}

/// Writes `req` and reads its reply.
async fn send(mc: &mut MultiplexedConnection, req: CommandKind<'_>) -> redis::RedisResult<Reply> {
    match req {
        CommandKind::Single(cmd) => mc.send_packed_command(cmd).await.map(Reply::One),
        CommandKind::Pipeline(p, offset, count) => mc
            .send_packed_commands(p, offset, count)
            .await
            .map(Reply::Many),
    }
}

/// Closes the connection when dropped still armed: a blocking request that was not answered.
struct CloseUnlessAnswered<'a>(Option<&'a Link>);

impl Drop for CloseUnlessAnswered<'_> {
    fn drop(&mut self) {
        if let Some(link) = self.0 {
            link.close();
        }
    }
}

/// Every reply of `reply` is an error reply with `code` (a pipeline's none other).
fn all_replies_are(reply: &Reply, code: &str) -> bool {
    let is = |v: &Value| matches!(v, Value::ServerError(e) if e.code() == code);
    match reply {
        Reply::One(v) => is(v),
        Reply::Many(vs) => !vs.is_empty() && vs.iter().all(is),
    }
}

/// Every reply is `-READONLY`: the server is a replica and nothing was executed, so sending
/// again (to the master) is safe. A pipeline with any other reply is not: it ran in part.
pub(crate) fn all_readonly(reply: &Reply) -> bool {
    all_replies_are(reply, "READONLY")
}

/// Every reply is `-LOADING`: nothing was executed, so sending again is safe.
fn all_loading(reply: &Reply) -> bool {
    all_replies_are(reply, "LOADING")
}

/// What the first error reply of `reply` said, if it holds one (`NOPERM` is `auth`, `WRONGTYPE`
/// is `server`, …).
pub(super) fn error_reply_label(reply: &Reply) -> Option<ErrorLabel> {
    let first = match reply {
        Reply::One(Value::ServerError(e)) => e,
        Reply::One(_) => return None,
        Reply::Many(vs) => vs.iter().find_map(|v| match v {
            Value::ServerError(e) => Some(e),
            _ => None,
        })?,
    };
    Some(ErrorLabel::from(classify(&redis::RedisError::from(
        first.clone(),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: &str) -> Value {
        match redis::parse_redis_value(format!("-{code} detail\r\n").as_bytes()) {
            Ok(v @ Value::ServerError(_)) => v,
            other => panic!("expected an error reply, got {other:?}"),
        }
    }

    #[test]
    fn a_request_is_resendable_only_when_every_reply_refused_it() {
        let ro = || error("READONLY");
        assert!(all_readonly(&Reply::One(ro())));
        assert!(all_readonly(&Reply::Many(vec![ro(), ro()])));
        assert!(
            !all_readonly(&Reply::Many(vec![ro(), Value::Okay])),
            "ran in part"
        );
        assert!(!all_readonly(&Reply::Many(vec![])));
        assert!(!all_readonly(&Reply::One(error("LOADING"))));
        assert!(all_loading(&Reply::Many(vec![error("LOADING")])));
        assert!(!all_loading(&Reply::One(Value::Okay)));
    }

    #[test]
    fn an_error_reply_is_labelled_by_its_code() {
        let one = |v| error_reply_label(&Reply::One(v));
        assert_eq!(one(error("NOPERM")), Some(ErrorLabel::Auth));
        assert_eq!(one(error("WRONGTYPE")), Some(ErrorLabel::Server));
        assert_eq!(one(error("TRYAGAIN")), Some(ErrorLabel::TryAgain));
        assert_eq!(one(Value::Okay), None);
        let many = Reply::Many(vec![Value::Okay, error("MASTERDOWN"), error("WRONGTYPE")]);
        assert_eq!(
            error_reply_label(&many),
            Some(ErrorLabel::MasterDown),
            "the first one"
        );
        assert_eq!(error_reply_label(&Reply::Many(vec![Value::Okay])), None);
    }
}
