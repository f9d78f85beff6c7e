//! A request as the command path sees it (one command, or a pipeline with the replies to
//! keep) and its reply.

use redis::{Cmd, Pipeline, Value};

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
