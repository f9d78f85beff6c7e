//! The real runtime adapters (tokio, smol) against loopback TCP: socket options, byte round-trip,
//! timers, spawning and `timeout_at`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;

use redis_keeper::seams::{timeout_at, Elapsed, Endpoint, Keepalive, Runtime, TcpOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous bound for loopback work, so a broken adapter fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(10);

/// A loopback listener whose thread accepts `conns` connections and echoes 4 bytes on each.
fn echo_server(conns: usize) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("local addr").port();
    let server = std::thread::spawn(move || {
        for _ in 0..conns {
            let (mut sock, _) = listener.accept().expect("accept");
            sock.set_read_timeout(Some(LIMIT)).expect("read timeout");
            let mut buf = [0u8; 4];
            if sock.read_exact(&mut buf).is_ok() {
                let _ = sock.write_all(&buf);
            }
        }
    });
    (port, server)
}

fn custom_options() -> TcpOptions {
    TcpOptions {
        nodelay: false,
        keepalive: Some(Keepalive {
            idle: Duration::from_secs(30),
            interval: Duration::from_secs(7),
            probes: 3,
        }),
    }
}

fn no_options() -> TcpOptions {
    TcpOptions {
        nodelay: false,
        keepalive: None,
    }
}

/// Reads the options back from a connected socket and compares them with what was asked for.
fn assert_options(sock: socket2::SockRef<'_>, want: &TcpOptions) {
    assert_eq!(sock.tcp_nodelay().expect("nodelay"), want.nodelay);
    match want.keepalive {
        Some(k) => {
            assert!(sock.keepalive().expect("keepalive"));
            assert_eq!(sock.tcp_keepalive_time().expect("idle"), k.idle);
            assert_eq!(sock.tcp_keepalive_interval().expect("interval"), k.interval);
            assert_eq!(sock.tcp_keepalive_retries().expect("probes"), k.probes);
        }
        None => assert!(!sock.keepalive().expect("keepalive")),
    }
}

/// Every seam of `runtime` in turn; must run inside the runtime's executor.
async fn exercise(runtime: Runtime) {
    let clock = runtime.clock().clone();
    let (port, server) = echo_server(1);

    // Bytes round-trip through the type-erased stream.
    let endpoint = Endpoint::tcp("127.0.0.1", port);
    let options = TcpOptions::default();
    let connect = runtime.transport().connect(&endpoint, &options);
    let mut stream = timeout_at(&*clock, clock.now() + LIMIT, connect)
        .await
        .expect("connect in time")
        .expect("connect");
    stream.write_all(b"PING").await.expect("write");
    stream.flush().await.expect("flush");
    let mut echoed = [0u8; 4];
    stream.read_exact(&mut echoed).await.expect("read");
    assert_eq!(&echoed, b"PING");
    drop(stream);
    server.join().expect("server thread");

    // The clock sleeps until its deadline.
    let deadline = clock.now() + Duration::from_millis(20);
    clock.sleep_until(deadline).await;
    assert!(clock.now() >= deadline);

    // A spawned task runs.
    let (tx, rx) = futures::channel::oneshot::channel();
    runtime.spawner().spawn(Box::pin(async move {
        let _ = tx.send(42);
    }));
    let got = timeout_at(&*clock, clock.now() + LIMIT, rx).await;
    assert_eq!(got, Ok(Ok(42)));

    // timeout_at fires on a future that never completes.
    let deadline = clock.now() + Duration::from_millis(20);
    let out = timeout_at(&*clock, deadline, futures::future::pending::<()>()).await;
    assert_eq!(out, Err(Elapsed));
    assert!(clock.now() >= deadline);
}

#[test]
fn detect_picks_smol_outside_tokio() {
    assert_eq!(Runtime::detect().name(), "smol");
}

#[test]
fn smol_adapter_end_to_end() {
    smol::block_on(exercise(Runtime::smol()));
}

#[test]
fn smol_transport_sets_socket_options() {
    use redis_keeper::seams::smol::SmolTransport;
    let (port, server) = echo_server(3);
    smol::block_on(async {
        for want in [TcpOptions::default(), custom_options(), no_options()] {
            let stream = SmolTransport
                .connect_tcp("127.0.0.1", port, &want)
                .await
                .expect("connect");
            assert_options(socket2::SockRef::from(stream.get_ref()), &want);
        }
    });
    server.join().expect("server thread");
}

#[test]
fn smol_transport_resolves_names_and_reports_refusals() {
    use redis_keeper::seams::smol::SmolTransport;
    let (port, server) = echo_server(1);
    smol::block_on(async {
        let stream = SmolTransport
            .connect_tcp("localhost", port, &TcpOptions::default())
            .await;
        // "localhost" may resolve to ::1 first; the IPv4 address must then be tried too.
        assert!(stream.is_ok(), "{stream:?}");
    });
    server.join().expect("server thread");
    // Nothing listens on the port any more.
    let refused = smol::block_on(SmolTransport.connect_tcp("127.0.0.1", port, &no_options()));
    assert!(refused.is_err());
}

#[cfg(feature = "tokio")]
mod tokio_adapter {
    use super::*;
    use redis_keeper::seams::tokio::{TokioClock, TokioSpawn, TokioTransport};
    use redis_keeper::seams::Clock;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn end_to_end_multi_thread() {
        exercise(Runtime::tokio()).await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn end_to_end_current_thread() {
        exercise(Runtime::tokio()).await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn detect_picks_tokio_inside_tokio() {
        assert_eq!(Runtime::detect().name(), "tokio");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn transport_sets_socket_options() {
        let (port, server) = echo_server(3);
        let transport = TokioTransport::current();
        for want in [TcpOptions::default(), custom_options(), no_options()] {
            let stream = transport
                .connect_tcp("127.0.0.1", port, &want)
                .await
                .expect("connect");
            assert_options(socket2::SockRef::from(&stream), &want);
        }
        tokio::task::spawn_blocking(move || server.join().expect("server thread"))
            .await
            .expect("join");
    }

    /// The seams hold their runtime's handle, so they work from threads outside it.
    #[test]
    fn seams_work_from_outside_the_runtime() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let handle = rt.handle().clone();
        let clock = TokioClock::new(handle.clone());
        let (port, server) = echo_server(1);
        futures::executor::block_on(async {
            let deadline = clock.now() + Duration::from_millis(20);
            clock.sleep_until(deadline).await;
            assert!(clock.now() >= deadline);
            let stream = TokioTransport::new(handle.clone())
                .connect_tcp("127.0.0.1", port, &TcpOptions::default())
                .await
                .expect("connect");
            assert_options(socket2::SockRef::from(&stream), &TcpOptions::default());
        });
        server.join().expect("server thread");
        let (tx, rx) = std::sync::mpsc::channel();
        redis_keeper::seams::Spawn::spawn(
            &TokioSpawn::new(handle),
            Box::pin(async move { tx.send(1).expect("send") }),
        );
        assert_eq!(rx.recv_timeout(LIMIT), Ok(1));
    }
}
