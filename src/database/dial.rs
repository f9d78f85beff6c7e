//! What a connection is opened for ([`Dial`]), its push handler, and what a failed network step
//! returns ([`Failure`]): shared by the connector and the Sentinel lookups.

use std::sync::Arc;

use crate::policy::FailureKind;

/// A failed network step: what the policies see, and the error itself.
pub(crate) type Failure = (FailureKind, redis::RedisError);

/// Called with every push frame of a RESP3 connection (a subscriber's messages); it must not
/// block: it runs on the connection's driver.
pub(crate) type OnPush = Arc<dyn Fn(redis::PushInfo) + Send + Sync>;

/// What a connection is opened for: the pools' RESP2 command connections, or a subscriber's.
#[derive(Clone, Default)]
pub(crate) struct Dial {
    /// RESP3 with this push handler (a subscriber); RESP2 without one.
    pub(crate) push: Option<OnPush>,
}
