//! One request on a cluster database: sent through redis-rs's cluster connection, its
//! redirections followed, its refusals waited out, as [`ClusterRetry`] decides.

use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{ErrorKind, RedisError, ServerErrorKind};

use super::outcome::{node_answered, outcome_of, Resend};
use super::ClusterBackend;
use crate::database::command::error_reply_label;
use crate::database::{CommandKind, Database, Reply};
use crate::error::Error;
use crate::policy::{ClusterOutcome, ClusterRetry, ClusterRetryConfig, ClusterStep};

/// Where a redirection sends the next try.
enum Redirect {
    Moved { host: String, port: u16 },
    Ask { host: String, port: u16 },
}

impl ClusterBackend {
    /// Runs `req` for `db`: every send asks the breaker first and reports to it whether a node
    /// answered (a redirection, `CLUSTERDOWN` or `TRYAGAIN` is an answer: no breaker failure).
    pub(crate) async fn run(&self, db: &Database, req: CommandKind<'_>) -> Result<Reply, Error> {
        let resend = Resend::of(req);
        let started = db.now();
        let config =
            ClusterRetryConfig::bounded(self.settings.max_attempts, self.settings.command_deadline);
        let mut retry = ClusterRetry::new(config, started);
        let mut redirect = None;
        // The error of this request's last send: what the caller gets, rather than the open
        // breaker, when its own failures opened it.
        let mut last: Option<RedisError> = None;
        // Bounded by the policy: at most `max_attempts` sends, none after the deadline.
        loop {
            let permit = match (db.admission().permit(), last.take()) {
                (Ok(permit), _) => permit,
                (Err(_), Some(err)) => return Err(db.failed(Error::Redis(err))),
                (Err(e), None) => return Err(db.failed(e)),
            };
            let sent_at = db.now();
            let (result, outcome) = match self.connection().await {
                Ok(mut conn) => {
                    let result = send(&mut conn, req, redirect.take()).await;
                    let outcome = result.as_ref().err().map(outcome_of);
                    (result, outcome)
                }
                // No connection: nothing was sent.
                Err(e) => (Err(e), Some(ClusterOutcome::NotSent)),
            };
            let now = db.now();
            let err = match (result, outcome) {
                (Ok(reply), _) => {
                    db.admission().report(permit, true);
                    let label = error_reply_label(&reply);
                    db.counters()
                        .record_reply(now.saturating_duration_since(sent_at), label);
                    if label.is_none() {
                        db.admission().mark_ready();
                    }
                    return Ok(reply);
                }
                (Err(err), outcome) => {
                    let outcome = outcome.unwrap_or(ClusterOutcome::Answered);
                    db.admission().report(permit, node_answered(outcome));
                    self.count(&err);
                    redirect = redirect_of(&err);
                    if outcome == ClusterOutcome::NotSent
                        && err.kind() == ErrorKind::ClusterConnectionNotFound
                    {
                        // redis-rs lost its map of the nodes: start again from the seeds.
                        self.replace_connection();
                    }
                    match self.step(&mut retry, resend.adjust(outcome), resend.repeatable, now) {
                        ClusterStep::Return => err,
                        ClusterStep::Redirect => {
                            last = Some(err);
                            continue;
                        }
                        ClusterStep::Wait(wait) => {
                            keeper_event!(db, DEBUG, error = %err, ?wait, "cluster refused; waiting");
                            last = Some(err);
                            db.runtime().clock().sleep_until(now + wait).await;
                            continue;
                        }
                    }
                }
            };
            return Err(db.failed(Error::Redis(err)));
        }
    }

    fn step(
        &self,
        retry: &mut ClusterRetry,
        outcome: ClusterOutcome,
        repeatable: bool,
        now: std::time::Instant,
    ) -> ClusterStep {
        let mut rng = super::lock(&self.rng);
        retry.next(outcome, repeatable, now, &mut rng)
    }

    /// Counts a redirection or refusal.
    fn count(&self, err: &RedisError) {
        let c = &self.counters;
        let counter = match err.kind() {
            ErrorKind::Server(ServerErrorKind::Moved) => &c.moved,
            ErrorKind::Server(ServerErrorKind::Ask) => &c.ask,
            _ if outcome_of(err) == ClusterOutcome::Refused => &c.refusals,
            _ => return,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The node a `MOVED` or `ASK` names.
fn redirect_of(err: &RedisError) -> Option<Redirect> {
    let (addr, _slot) = err.redirect_node()?;
    let (host, port) = addr.rsplit_once(':')?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = port.parse().ok()?;
    match err.kind() {
        ErrorKind::Server(ServerErrorKind::Ask) => Some(Redirect::Ask { host, port }),
        _ => Some(Redirect::Moved { host, port }),
    }
}

/// One send: routed by slot, or to the node a redirection named (after `ASKING` for an
/// `ASK`). A pipeline is always routed by redis-rs (a redirected one goes again by slot).
async fn send(
    conn: &mut ClusterConnection,
    req: CommandKind<'_>,
    redirect: Option<Redirect>,
) -> redis::RedisResult<Reply> {
    match (req, redirect) {
        (CommandKind::Single(cmd), Some(Redirect::Moved { host, port })) => {
            let to = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
            conn.route_command(cmd.clone(), to).await.map(Reply::One)
        }
        (CommandKind::Single(cmd), Some(Redirect::Ask { host, port })) => {
            let mut p = redis::pipe();
            p.cmd("ASKING").add_command(cmd.clone());
            let to = SingleNodeRoutingInfo::ByAddress { host, port };
            let mut replies = conn.route_pipeline(p, 1, 1, to).await?;
            Ok(Reply::One(replies.pop().unwrap_or(redis::Value::Nil)))
        }
        (CommandKind::Single(cmd), None) => conn.req_packed_command(cmd).await.map(Reply::One),
        (CommandKind::Pipeline(p, offset, count), _) => conn
            .req_packed_commands(p, offset, count)
            .await
            .map(Reply::Many),
    }
}
