//! The crate's own failure kinds: what the policies need to know about an error, nothing more.

/// What went wrong, as far as the policies care. [`crate::classify`] maps redis-rs errors here;
/// nothing else inspects redis errors.
///
/// ```
/// use redis_keeper::policy::FailureKind;
/// assert!(FailureKind::Io.trips_breaker());
/// assert!(!FailureKind::Loading.trips_breaker()); // the server is alive, just busy
/// assert!(FailureKind::TryAgain.is_retryable());
/// assert!(!FailureKind::Auth.is_retryable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The socket failed: refused, reset, closed, broken pipe, unreachable.
    Io,
    /// Opening the connection (TCP connect plus handshake) took longer than allowed.
    ConnectTimeout,
    /// A reply did not arrive in time.
    ResponseTimeout,
    /// The reply could not be parsed: the stream is out of step and must be closed.
    Protocol,
    /// `-LOADING`: the server is alive but still loading its dataset.
    Loading,
    /// `-TRYAGAIN`: a transient server condition.
    TryAgain,
    /// `-MASTERDOWN`: the replica lost its master; transient.
    MasterDown,
    /// Authentication was refused (`-NOAUTH`, `-WRONGPASS`, `-NOPERM`).
    Auth,
    /// The TLS handshake failed: the server's certificate did not verify (wrong CA, wrong
    /// name, expired), or the server refused ours. Retrying cannot help.
    Tls,
    /// The circuit breaker rejected the attempt without touching the network.
    CircuitOpen,
    /// Any other error reply: the server is alive and answered.
    Server,
    /// `-READONLY`: the server is a replica (a stale master after a failover); the command
    /// did not run.
    ReadOnly,
    /// The server a Sentinel named as the master answered `ROLE` as something else (a
    /// failover under way): resolved again through the retry schedule, not a breaker failure.
    RoleMismatch,
}

impl FailureKind {
    /// Whether connection establishment may be retried after this failure (DESIGN §3 retry).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Io
                | Self::ConnectTimeout
                | Self::ResponseTimeout
                | Self::Protocol
                | Self::TryAgain
                | Self::MasterDown
                | Self::RoleMismatch
        )
    }

    /// Whether this failure counts against the circuit breaker: transport errors and timeouts
    /// only. A server that answers, even with an error or `-LOADING`, is alive.
    pub fn trips_breaker(self) -> bool {
        matches!(
            self,
            Self::Io | Self::ConnectTimeout | Self::ResponseTimeout | Self::Protocol
        )
    }

    /// Whether this failure leaves the connection unusable (it must be closed, never re-idled).
    pub fn poisons_connection(self) -> bool {
        self.trips_breaker() || self == Self::Tls
    }

    /// Whether this failure is a timeout.
    pub fn is_timeout(self) -> bool {
        matches!(self, Self::ConnectTimeout | Self::ResponseTimeout)
    }
}

#[cfg(test)]
mod tests {
    use super::FailureKind::{self, *};

    /// Every kind with (retryable, trips breaker, poisons connection, timeout), from DESIGN §3.
    const TABLE: [(FailureKind, bool, bool, bool, bool); 13] = [
        (Io, true, true, true, false),
        (ConnectTimeout, true, true, true, true),
        (ResponseTimeout, true, true, true, true),
        (Protocol, true, true, true, false),
        (Loading, false, false, false, false),
        (TryAgain, true, false, false, false),
        (MasterDown, true, false, false, false),
        (Auth, false, false, false, false),
        (Tls, false, false, true, false),
        (CircuitOpen, false, false, false, false),
        (Server, false, false, false, false),
        (ReadOnly, false, false, false, false),
        (RoleMismatch, true, false, false, false),
    ];

    #[test]
    fn every_kind_is_classified_as_the_design_says() {
        for (kind, retryable, trips, poisons, timeout) in TABLE {
            assert_eq!(kind.is_retryable(), retryable, "{kind:?} retryable");
            assert_eq!(kind.trips_breaker(), trips, "{kind:?} trips the breaker");
            assert_eq!(kind.poisons_connection(), poisons, "{kind:?} poisons");
            assert_eq!(kind.is_timeout(), timeout, "{kind:?} is a timeout");
        }
    }
}
