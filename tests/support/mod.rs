//! Helpers shared by the integration tests that talk to a real `redis-server`.
// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

/// Each scenario `async fn name(rt: Runtime)` once under tokio (multi-thread) and once under
/// smol, as a module `name` with tests `tokio` and `smol`.
#[allow(unused_macros)] // not every test crate runs scenarios on both runtimes
macro_rules! on_both_runtimes {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                use redis_keeper::seams::Runtime;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn tokio() {
                    super::$scenario(Runtime::tokio()).await;
                }

                #[test]
                fn smol() {
                    smol::block_on(super::$scenario(Runtime::smol()));
                }
            }
        )*
    };
}

#[cfg(feature = "tls")]
pub mod certs;
pub mod cluster;
pub mod harness;
pub mod redis_server;
pub mod sentinel;
