//! What a connection is opened for ([`Dial`]), its push handler, the redis-rs handshake over
//! an opened stream ([`handshake`]), and what a failed network step returns ([`Failure`]):
//! shared by the connector and the Sentinel lookups.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

use super::driver::{driver_task, Driver};
use crate::policy::FailureKind;
use crate::seams::{BoxStream, Runtime};

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

/// The redis-rs handshake (HELLO/AUTH/SELECT as `info` says) over `stream`, with redis-rs's
/// own timeouts off (the crate's deadlines bound every step); RESP3 with `push` as the push
/// handler when given, RESP2 without. The driver runs as a task on `runtime`; its flags come
/// back with the connection.
pub(crate) async fn handshake(
    stream: BoxStream,
    info: &redis::RedisConnectionInfo,
    push: Option<&OnPush>,
    runtime: &Runtime,
) -> redis::RedisResult<(MultiplexedConnection, Arc<Driver>)> {
    let mut config = AsyncConnectionConfig::new()
        .set_response_timeout(None)
        .set_connection_timeout(None);
    let resp3;
    let info = match push {
        None => info,
        Some(on_push) => {
            let on_push = on_push.clone();
            config = config.set_push_sender(move |info| {
                on_push(info);
                Ok::<(), std::convert::Infallible>(())
            });
            resp3 = info.clone().set_protocol(redis::ProtocolVersion::RESP3);
            &resp3
        }
    };
    let (conn, driver) = MultiplexedConnection::new_with_config(info, stream, config).await?;
    let (task, driver) = driver_task(driver);
    runtime.spawner().spawn(Box::pin(task));
    Ok((conn, driver))
}
