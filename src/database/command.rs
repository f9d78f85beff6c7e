//! Running user commands through a database's policies: readiness first, then the breaker, the
//! connection's response-timeout watchdog, and outcome reporting. A command that got `-LOADING` was not
//! executed, so it is sent again once the server is ready; nothing else is ever resent.

use std::io;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, Pipeline, Value};

use super::conn::Link;
use super::Database;
use crate::classify::classify;
use crate::policy::FailureKind;
use crate::stats::DbCounters;
use crate::Error;

/// A request: one command, or a packed pipeline with the replies to keep.
#[derive(Clone, Copy)]
pub(crate) enum CommandKind<'a> {
    /// One command.
    Single(&'a Cmd),
    /// A pipeline: skip `offset` replies, keep `count`.
    Pipeline(&'a Pipeline, usize, usize),
}

/// The reply to a request.
pub(crate) enum Reply {
    One(Value),
    Many(Vec<Value>),
}

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
    /// under the database's policies.
    pub(crate) async fn execute(
        &self,
        link: &Link,
        mc: &mut MultiplexedConnection,
        req: CommandKind<'_>,
    ) -> Result<Reply, CommandError> {
        if self.settings.log_commands {
            log_request(&self.name, req);
        }
        for _ in 0..=MAX_LOADING_RESENDS {
            if self.is_loading() {
                // Boxed: the rare wait would otherwise size every command's future.
                if let Err(e) = Box::pin(self.wait_ready(mc)).await {
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
            let permit = self.breaker_permit().map_err(|e| self.failed(e))?;
            let started = self.now();
            // The connection's watchdog times the command out; no timer is armed for it here.
            let ticket = link.watch(started + self.settings.response_timeout, &self.runtime);
            let result = match req {
                CommandKind::Single(cmd) => mc.send_packed_command(cmd).await.map(Reply::One),
                CommandKind::Pipeline(p, offset, count) => mc
                    .send_packed_commands(p, offset, count)
                    .await
                    .map(Reply::Many),
            };
            let result = match result {
                // The watchdog aborted the connection under this command: its deadline (or an
                // older command's, whose connection it shared) passed without a reply.
                Err(_) if ticket.timed_out() => Err(redis::RedisError::from(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no reply within {:?} from database `{}`",
                        self.settings.response_timeout, self.name
                    ),
                ))),
                other => other,
            };
            drop(ticket);
            let now = self.now();
            match result {
                Ok(reply) if all_loading(&reply) => {
                    self.breaker_report(permit, true);
                    self.enter_loading();
                }
                Ok(reply) => {
                    self.breaker_report(permit, true);
                    let error_reply = is_error_reply(&reply);
                    self.counters
                        .record_reply(now.saturating_duration_since(started), error_reply);
                    if !error_reply {
                        self.mark_ready();
                    }
                    return Ok(reply);
                }
                Err(err) => {
                    let kind = classify(&err);
                    if kind == FailureKind::Loading {
                        self.breaker_report(permit, true);
                        self.enter_loading();
                        continue;
                    }
                    self.breaker_report_on(link, permit, !kind.trips_breaker());
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
            db: self.name.to_string(),
            waited: self.settings.readiness.loading_timeout,
        })))
    }

    /// Counts a failed operation and remembers its error.
    pub(crate) fn failed(&self, e: Error) -> Error {
        DbCounters::bump(&self.counters.failed);
        self.record_error(&e);
        e
    }
}

/// YAML `log_commands`: one `debug` event per command with the database, the command's name and
/// its argument count, never a value (an `AUTH` or `HELLO` shows no more than any other).
/// Emitted whatever the Keeper's `log_level`: the user asked for these events by name.
fn log_request(db: &str, req: CommandKind<'_>) {
    let log = |cmd: &Cmd| {
        let mut args = cmd.args_iter();
        let name = match args.next() {
            Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).to_ascii_uppercase(),
            _ => String::from("(cursor)"),
        };
        tracing::debug!(db = %db, command = %name, args = args.count(), "command");
    };
    match req {
        CommandKind::Single(cmd) => log(cmd),
        CommandKind::Pipeline(p, _, _) => p.cmd_iter().for_each(log),
    }
}

fn loading_value(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if e.code() == "LOADING")
}

/// Every reply is `-LOADING`: nothing was executed, so sending again is safe.
fn all_loading(reply: &Reply) -> bool {
    match reply {
        Reply::One(v) => loading_value(v),
        Reply::Many(vs) => !vs.is_empty() && vs.iter().all(loading_value),
    }
}

fn is_error_reply(reply: &Reply) -> bool {
    match reply {
        Reply::One(v) => matches!(v, Value::ServerError(_)),
        Reply::Many(vs) => vs.iter().any(|v| matches!(v, Value::ServerError(_))),
    }
}
