//! The one place that inspects redis-rs errors: maps them onto the crate's [`FailureKind`].

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::policy::FailureKind;

/// Maps a redis-rs error onto the failure kind the policies understand.
///
/// `-LOADING` is `ServerErrorKind::BusyLoading` in redis-rs 1.x; authentication failures come as
/// `AuthenticationFailed`, `NOPERM`, or extension codes `NOAUTH`/`WRONGPASS`. A MULTI/EXEC whose
/// queued commands were all answered `-LOADING` (so EXEC answered `-EXECABORT` and nothing ran)
/// is `Loading` too: like a plain `-LOADING`, it is safe to send again once the server is ready.
///
/// ```
/// use redis_keeper::classify::classify;
/// use redis_keeper::policy::FailureKind;
/// let io = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
/// assert_eq!(classify(&io), FailureKind::Io);
/// ```
pub fn classify(err: &RedisError) -> FailureKind {
    match err.kind() {
        ErrorKind::Io if is_tls(err) => FailureKind::Tls,
        ErrorKind::Io if err.is_timeout() => FailureKind::ResponseTimeout,
        ErrorKind::Io => FailureKind::Io,
        ErrorKind::Parse => FailureKind::Protocol,
        ErrorKind::AuthenticationFailed => FailureKind::Auth,
        ErrorKind::Server(ServerErrorKind::BusyLoading) => FailureKind::Loading,
        ErrorKind::Server(ServerErrorKind::ExecAbort) if aborted_by_loading(err) => {
            FailureKind::Loading
        }
        ErrorKind::Server(ServerErrorKind::TryAgain) => FailureKind::TryAgain,
        ErrorKind::Server(ServerErrorKind::MasterDown) => FailureKind::MasterDown,
        ErrorKind::Server(ServerErrorKind::NoPerm) => FailureKind::Auth,
        ErrorKind::Server(ServerErrorKind::ReadOnly) => FailureKind::ReadOnly,
        ErrorKind::Extension => match err.code() {
            Some("NOAUTH" | "WRONGPASS") => FailureKind::Auth,
            Some("LOADING") => FailureKind::Loading,
            _ => FailureKind::Server,
        },
        _ => FailureKind::Server,
    }
}

/// The `io::Error` inside a redis-rs I/O error (redis-rs keeps it behind an `Arc` and names
/// the `Arc` as the source), for the payload an `io::Error` may carry.
#[cfg_attr(
    not(any(feature = "tls", feature = "tokio", feature = "smol")),
    allow(dead_code)
)]
pub(crate) fn io_error_of(err: &RedisError) -> Option<&std::io::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let source = std::error::Error::source(err)?;
    match source.downcast_ref::<Shared>() {
        Some(shared) => shared.downcast_ref::<std::io::Error>(),
        None => source.downcast_ref::<std::io::Error>(),
    }
}

/// Whether `err` is a failed TLS handshake or a TLS alert (a `rustls::Error` inside its
/// `io::Error`).
#[cfg(feature = "tls")]
fn is_tls(err: &RedisError) -> bool {
    io_error_of(err)
        .and_then(|io| io.get_ref())
        .is_some_and(|inner| inner.is::<rustls::Error>())
}

/// Without the `tls` feature no error is a TLS one.
#[cfg(not(feature = "tls"))]
fn is_tls(_err: &RedisError) -> bool {
    false
}

/// An aborted transaction whose every queued-command error is `-LOADING`: the server discarded
/// it without running anything because it was loading its dataset.
fn aborted_by_loading(err: &RedisError) -> bool {
    err.clone()
        .into_server_errors()
        .is_some_and(|errs| !errs.is_empty() && errs.iter().all(|(_, e)| e.code() == "LOADING"))
}

/// Whether `err` is a `-LOADING` reply.
pub fn is_loading(err: &RedisError) -> bool {
    classify(err) == FailureKind::Loading
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn server(code: &str) -> RedisError {
        // Parse a real RESP error reply so the kinds come out exactly as redis-rs makes them.
        let reply = format!("-{code} some detail\r\n");
        match redis::parse_redis_value(reply.as_bytes()) {
            Ok(redis::Value::ServerError(e)) => e.into(),
            other => panic!("expected a server error, got {other:?}"),
        }
    }

    #[test]
    fn maps_every_kind_the_policies_care_about() {
        let cases = [
            (server("LOADING"), FailureKind::Loading),
            (server("TRYAGAIN"), FailureKind::TryAgain),
            (server("MASTERDOWN"), FailureKind::MasterDown),
            (server("READONLY"), FailureKind::ReadOnly),
            (server("NOAUTH"), FailureKind::Auth),
            (server("WRONGPASS"), FailureKind::Auth),
            (server("NOPERM"), FailureKind::Auth),
            (server("ERR"), FailureKind::Server),
            (server("WRONGTYPE"), FailureKind::Server),
            (
                RedisError::from(io::Error::from(io::ErrorKind::ConnectionReset)),
                FailureKind::Io,
            ),
            (
                RedisError::from(io::Error::from(io::ErrorKind::TimedOut)),
                FailureKind::ResponseTimeout,
            ),
            (
                RedisError::from((ErrorKind::AuthenticationFailed, "bad")),
                FailureKind::Auth,
            ),
            (
                RedisError::from((ErrorKind::Parse, "bad")),
                FailureKind::Protocol,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(classify(&err), want, "{err:?}");
        }
        assert!(is_loading(&server("LOADING")));
        assert!(!is_loading(&server("ERR")));
    }
}
