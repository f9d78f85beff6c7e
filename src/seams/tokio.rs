//! The tokio adapter: tokio timers, `tokio::spawn` and tokio TCP sockets.

use super::Runtime;

/// The tokio runtime seams. Must be called inside a tokio runtime.
pub(crate) fn runtime() -> Runtime {
    todo!("tokio adapter")
}
