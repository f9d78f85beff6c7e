//! [`Connector`]: opening connections, the only place that does: transport, handshake and a
//! first PING under the connect timeout, the retry schedule between attempts, the readiness wait that rides out
//! `LOADING`, and the PING that validates a connection.

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tracing::level_filters::LevelFilter;

use super::admission::Admission;
use super::backend::{Backend, Binding, Resolved};
use super::conn::{Link, RedisConn};
use super::dial::{handshake, Dial, Failure};
use super::sentinel::{check_role, LookupError, SentinelBackend};
use super::settings::{connection_info, PolicySettings};
use crate::classify::classify;
use crate::config::{DatabaseSettings, TlsSettings};
use crate::error::Error;
use crate::policy::{
    FailureKind, ProbeOutcome, ReadinessAction, RetryConfig, RetryDecision, RetrySchedule,
};
use crate::seams::{timeout_at, Runtime, TcpOptions, Transport};
use crate::stats::DbCounters;

fn timed_out(what: &str, kind: FailureKind) -> Failure {
    (
        kind,
        redis::RedisError::from(io::Error::new(io::ErrorKind::TimedOut, what.to_string())),
    )
}

/// Why one connection attempt failed.
enum Attempt {
    /// A network step failed: the policies judge it (retry, breaker).
    Failed(Failure),
    /// Nothing to retry: a configuration error found on the way (an unknown Sentinel master).
    Refused(Error),
}

impl From<Failure> for Attempt {
    fn from(f: Failure) -> Self {
        Self::Failed(f)
    }
}

/// What [`Connector::new`] is given that the rest of the database shares.
pub(super) struct Common {
    /// The database's name.
    pub(super) name: Arc<str>,
    /// The most detailed `tracing` level it emits.
    pub(super) log_level: LevelFilter,
    /// Its clock, spawner and transport.
    pub(super) runtime: Runtime,
    /// Its breaker, readiness and loss grouping.
    pub(super) admission: Arc<Admission>,
    /// Its statistics.
    pub(super) counters: Arc<DbCounters>,
    /// Its Sentinel backend (shared with the other databases of the same master), if any.
    pub(super) sentinel: Option<Arc<SentinelBackend>>,
}

/// A database's connector: the only opener of its connections. It owns the backend binding
/// (and its epoch), the handshake parameters, the connect schedule and the registry of the
/// connections it opened; the admission, counters and runtime it shares with the database.
pub(crate) struct Connector {
    name: Arc<str>,
    log_level: LevelFilter,
    runtime: Runtime,
    admission: Arc<Admission>,
    counters: Arc<DbCounters>,
    /// The redis-rs handshake parameters (db number, credentials; RESP2).
    conn_info: redis::RedisConnectionInfo,
    /// What it connects to, and the epoch of the current resolution.
    binding: Binding,
    /// The runtime's transport, or TLS over it when the database has `ssl` on.
    transport: Arc<dyn Transport>,
    /// Every connection opened, so that closing reaches the lent ones too (pruned on each open).
    links: Mutex<Vec<Weak<Link>>>,
    retry: RetryConfig,
    connect_timeout: Duration,
    response_timeout: Duration,
    probe_timeout: Duration,
    tcp: TcpOptions,
}

impl Connector {
    /// The connector of the database configured by `settings` and `policy`.
    pub(super) fn new(
        settings: &DatabaseSettings,
        policy: &PolicySettings,
        common: Common,
    ) -> Self {
        let Common {
            name,
            log_level,
            runtime,
            admission,
            counters,
            sentinel,
        } = common;
        Self {
            transport: transport_for(settings.tls.as_ref(), &runtime),
            binding: binding_for(settings, sentinel),
            name,
            log_level,
            runtime,
            admission,
            counters,
            conn_info: connection_info(settings),
            links: Mutex::new(Vec::new()),
            retry: policy.retry.clone(),
            connect_timeout: settings.connect_timeout,
            response_timeout: settings.response_timeout,
            probe_timeout: policy.readiness.probe_timeout,
            tcp: settings.tcp,
        }
    }

    /// For `keeper_event!`.
    fn name(&self) -> &str {
        &self.name
    }

    /// For `keeper_event!`.
    fn log_level(&self) -> LevelFilter {
        self.log_level
    }

    fn now(&self) -> Instant {
        self.runtime.clock().now()
    }

    fn record_error(&self, err: &Error) {
        self.counters.record_error(err.to_string(), self.now());
    }

    /// Remembers a newly opened connection (see [`Connector::open_links`]).
    fn track(&self, link: &Arc<Link>) {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links.retain(|l| l.strong_count() > 0);
        links.push(Arc::downgrade(link));
    }

    /// The connections still open (tracked and not dropped), idle, shared and lent alike.
    pub(super) fn open_links(&self) -> Vec<Arc<Link>> {
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links.iter().filter_map(Weak::upgrade).collect()
    }

    /// Starts a new backend epoch (see [`Binding::bump_epoch`]); returns it.
    pub(super) fn bump_epoch(&self) -> u64 {
        self.binding.bump_epoch()
    }

    /// Opens one ready connection for `dial`, following the retry schedule; every attempt asks
    /// the breaker. A subscriber's connection does not wait out `LOADING`: Redis serves
    /// `SUBSCRIBE` and `PUBLISH` while it loads.
    pub(super) async fn open(&self, dial: &Dial) -> Result<RedisConn, Error> {
        let mut schedule = RetrySchedule::new(self.retry.clone());
        loop {
            let permit = self.admission.permit()?;
            match self.connect_once(dial).await {
                Err(Attempt::Refused(e)) => {
                    self.admission.report(permit, true);
                    DbCounters::bump(&self.counters.connect_failed);
                    keeper_event!(self, ERROR, error = %e, "connect refused; not retried");
                    self.record_error(&e);
                    return Err(e);
                }
                Ok((conn, loading)) => {
                    self.admission.report(permit, true);
                    DbCounters::bump(&self.counters.created);
                    keeper_event!(self, DEBUG, "connection opened");
                    if loading {
                        self.admission.enter_loading();
                        if dial.push.is_none() {
                            self.wait_ready(conn.multiplexed()).await?;
                        }
                    } else {
                        self.admission.mark_ready();
                    }
                    return Ok(conn);
                }
                Err(Attempt::Failed((kind, err))) => {
                    self.admission.report(permit, !kind.trips_breaker());
                    DbCounters::bump(&self.counters.connect_failed);
                    // Refused credentials or a failed TLS handshake: retrying cannot help.
                    if matches!(kind, FailureKind::Auth | FailureKind::Tls) {
                        let (db, source) = (self.name.to_string(), err);
                        let e = if kind == FailureKind::Auth {
                            Error::Auth { db, source }
                        } else {
                            Error::Tls { db, source }
                        };
                        keeper_event!(self, WARN, error = %e, "connect refused; not retried");
                        self.record_error(&e);
                        return Err(e);
                    }
                    let now = self.now();
                    let decision = self.admission.retry_decision(&mut schedule, now, kind);
                    match decision {
                        RetryDecision::RetryAt(at) => {
                            DbCounters::bump(&self.counters.retries);
                            // Recorded now, not only on giving up: the breaker may open before
                            // the next attempt, and the caller then gets `CircuitOpen`, which
                            // names no cause.
                            self.record_error(&Error::Connect {
                                db: self.name.to_string(),
                                attempts: schedule.attempts(),
                                kind,
                                source: err.clone(),
                            });
                            keeper_event!(self, INFO, error = %err, wait = ?at.saturating_duration_since(now), "connect failed; retrying");
                            self.runtime.clock().sleep_until(at).await;
                        }
                        RetryDecision::GiveUp { attempts, .. } => {
                            let e = Error::Connect {
                                db: self.name.to_string(),
                                attempts,
                                kind,
                                source: err,
                            };
                            keeper_event!(self, ERROR, error = %e, attempts, "connect failed; giving up");
                            self.record_error(&e);
                            return Err(e);
                        }
                    }
                }
            }
        }
    }

    /// One attempt: connect, handshake (AUTH, SELECT), PING — all under the connect timeout.
    /// Returns the connection and whether the server answered the PING with `LOADING`.
    async fn connect_once(&self, dial: &Dial) -> Result<(RedisConn, bool), Attempt> {
        let target = self.target().await?;
        let clock = self.runtime.clock();
        let deadline = clock.now() + self.connect_timeout;
        let sentinel = self.binding.sentinel();
        let attempt = async {
            let stream = self
                .transport
                .connect(&target.endpoint, &self.tcp)
                .await
                .map_err(|e| {
                    let e = redis::RedisError::from(e);
                    (classify(&e), e)
                })?;
            let (inner, driver) =
                handshake(stream, &self.conn_info, dial.push.as_ref(), &self.runtime)
                    .await
                    .map_err(|e| (classify(&e), e))?;
            let conn = RedisConn::new(
                inner,
                driver,
                clock.now(),
                target.epoch,
                self.binding.current(),
            );
            self.track(conn.link());
            if let Some(sentinel) = sentinel {
                if let Err((role, failure)) =
                    check_role(conn.multiplexed(), sentinel.expected_role()).await
                {
                    if failure.0 == FailureKind::RoleMismatch {
                        sentinel.role_mismatch();
                        sentinel.forget_if(target.epoch);
                        keeper_event!(self, WARN, server = %target.endpoint, role = %role, "the server the sentinels named has another role; asking again");
                    }
                    return Err(failure);
                }
            }
            match ping(conn.multiplexed()).await {
                Ok(()) => Ok((conn, false)),
                Err((FailureKind::Loading, _)) => Ok((conn, true)),
                Err(failure) => Err(failure),
            }
        };
        match timeout_at(&**clock, deadline, attempt).await {
            Ok(result) => result.map_err(Attempt::Failed),
            Err(_) => Err(Attempt::Failed(timed_out(
                "connect timed out",
                FailureKind::ConnectTimeout,
            ))),
        }
    }

    /// Where the next connection goes: the fixed endpoint, the Sentinel master as known, or
    /// as the sentinels say when it is not known.
    async fn target(&self) -> Result<Resolved, Attempt> {
        let sentinel = match self.binding.resolve() {
            Ok(target) => return Ok(target),
            Err(sentinel) => sentinel,
        };
        match sentinel
            .lookup(&self.runtime, &self.tcp, self.connect_timeout)
            .await
        {
            // Learnt just now; forgotten again only by a concurrent ROLE mismatch or READONLY.
            Ok(_) => self.binding.resolve().map_err(|_| {
                let e = redis::RedisError::from(io::Error::other(
                    "the server the sentinels named was found to have another role meanwhile",
                ));
                Attempt::Failed((FailureKind::RoleMismatch, e))
            }),
            Err(LookupError::Failed(f)) => Err(Attempt::Failed(f)),
            Err(LookupError::Unknown(e)) => Err(Attempt::Refused(Error::Config(e))),
        }
    }

    /// The Sentinel backend, if the database has one.
    pub(super) fn sentinel(&self) -> Option<&Arc<SentinelBackend>> {
        self.binding.sentinel()
    }

    /// Waits until the server answers PING, probing on `conn` when it is this caller's turn
    /// (one probe in flight per database), or gives up with `NotReady` at the loading timeout.
    pub(super) async fn wait_ready(&self, conn: &MultiplexedConnection) -> Result<(), Error> {
        let started = self.now();
        // Bounded: each round either probes, sleeps to a later deadline, or returns.
        for _ in 0..100_000 {
            let listener = self.admission.ready_listener();
            let now = self.now();
            let action = self.admission.readiness_poll(now);
            match action {
                ReadinessAction::Ready => return Ok(()),
                ReadinessAction::GiveUp => {
                    DbCounters::bump(&self.counters.readiness_timeouts);
                    keeper_event!(self, ERROR, "readiness timed out: still loading");
                    let e = Error::NotReady {
                        db: self.name.to_string(),
                        waited: now.saturating_duration_since(started),
                    };
                    self.record_error(&e);
                    return Err(e);
                }
                ReadinessAction::SendProbe(token) => {
                    // Bounded like any command: a server that freezes while loading must not
                    // hold the prober (and every caller behind it) forever.
                    let deadline = self.now() + self.probe_timeout;
                    let result = timeout_at(&**self.runtime.clock(), deadline, ping(conn))
                        .await
                        .unwrap_or_else(|_| {
                            Err(timed_out(
                                "readiness probe timed out",
                                FailureKind::ResponseTimeout,
                            ))
                        });
                    let outcome = match &result {
                        Ok(()) => ProbeOutcome::Ready,
                        Err((FailureKind::Loading, _)) => ProbeOutcome::Loading,
                        Err(_) => ProbeOutcome::Failed,
                    };
                    let now = self.now();
                    self.admission.probe_finished(now, token, outcome);
                    keeper_event!(self, DEBUG, ?outcome, "readiness probe");
                    if outcome == ProbeOutcome::Ready {
                        keeper_event!(self, INFO, "server finished loading");
                    }
                    if let Err((kind, err)) = result {
                        if kind != FailureKind::Loading {
                            return Err(Error::Redis(err));
                        }
                    }
                }
                ReadinessAction::WaitUntil(at) => {
                    let sleep = self.runtime.clock().sleep_until(at);
                    futures::future::select(listener, sleep).await;
                }
            }
        }
        Err(Error::NotReady {
            db: self.name.to_string(),
            waited: self.now().saturating_duration_since(started),
        })
    }

    /// PINGs a connection through the breaker; used for idle validation and health checks.
    pub(super) async fn validate(&self, conn: &RedisConn) -> Result<(), Error> {
        let permit = self.admission.permit()?;
        let result = timeout_at(
            &**self.runtime.clock(),
            self.now() + self.response_timeout,
            ping(conn.multiplexed()),
        )
        .await
        .unwrap_or_else(|_| {
            Err(timed_out(
                "response timed out",
                FailureKind::ResponseTimeout,
            ))
        });
        match result {
            Ok(()) => {
                self.admission.report(permit, true);
                // A health check or checkout validation may be what first sees the server
                // ready again, e.g. when it met `LOADING` with no command waiting: without
                // this the episode would stay open and later time out into `NotReady`.
                self.admission.mark_ready();
                Ok(())
            }
            Err((kind, err)) => {
                self.admission
                    .report_on(conn.link(), permit, !kind.trips_breaker());
                if kind == FailureKind::Loading {
                    self.admission.enter_loading();
                }
                Err(Error::Redis(err))
            }
        }
    }
}

/// What a database connects to: its fixed endpoint, or the master its sentinels name.
fn binding_for(settings: &DatabaseSettings, sentinel: Option<Arc<SentinelBackend>>) -> Binding {
    match sentinel {
        None => Binding::new(
            Backend::Direct {
                endpoint: settings.endpoint.clone(),
            },
            Arc::new(AtomicU64::new(0)),
        ),
        Some(s) => {
            let epoch = s.epoch();
            Binding::new(Backend::Sentinel(s), epoch)
        }
    }
}

/// A transport: the runtime's, with TLS over it when `tls` is given.
pub(super) fn transport_for(tls: Option<&TlsSettings>, runtime: &Runtime) -> Arc<dyn Transport> {
    match tls {
        #[cfg(feature = "tls")]
        Some(tls) => Arc::new(crate::tls::TlsTransport::new(
            runtime.transport().clone(),
            tls.client.config.clone(),
            tls.client.server_name.clone(),
        )),
        _ => runtime.transport().clone(),
    }
}

/// Sends PING and reads the reply; an error reply comes back as a failure.
pub(crate) async fn ping(conn: &MultiplexedConnection) -> Result<(), Failure> {
    let mut mc = conn.clone();
    match mc.send_packed_command(&redis::cmd("PING")).await {
        Ok(redis::Value::ServerError(e)) => {
            let e = redis::RedisError::from(e);
            Err((classify(&e), e))
        }
        Ok(_) => Ok(()),
        Err(e) => Err((classify(&e), e)),
    }
}
