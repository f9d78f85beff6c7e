//! The smol adapter: async-io timers, `smol::spawn` and async-io TCP sockets.

use super::Runtime;

/// The smol runtime seams.
pub(crate) fn runtime() -> Runtime {
    todo!("smol adapter")
}
