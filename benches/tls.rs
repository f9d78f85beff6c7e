//! GET over TLS against a real TLS server (`BENCH_REDIS_TLS_PORT`, its CA in `BENCH_TLS_CA`;
//! `scripts/bench.sh` starts one with certificates it makes); without one nothing runs.
//!
//! - `tls/get/<variant>/<tasks>`: GET of a small key with 1 and 64 concurrent tasks on a
//!   2-worker tokio runtime: `keeper` (the default config plus `ssl` and `ssl_ca_certs`; each
//!   task takes a shared handle once), `keeper_as_raw` (the same with the raw anchor's
//!   connection settings: one shared connection, `TCP_NODELAY` off) and `raw_rediss` (each task clones one redis-rs
//!   `rediss://` `MultiplexedConnection`, redis-rs's own TLS).
//! - `tls/connect/<variant>`: one new connection and a PING, then close: through the Keeper's
//!   `TlsTransport` over its tokio transport (what the Keeper's connector does per new
//!   connection) and through redis-rs's `rediss://` client; each beside its plaintext twin
//!   (the server's plaintext port, `BENCH_REDIS_PORT`), so the handshake's cost is the
//!   difference.

mod common;

use std::hint::black_box;
use std::sync::Arc;

use common::{tokio_rt, Rt};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig};
use redis_keeper::seams::tokio::TokioTransport;
use redis_keeper::seams::{Endpoint, TcpOptions, Transport};
use redis_keeper::tls::TlsTransport;
use redis_keeper::{Keeper, KeeperConfig};
use rustls::pki_types::pem::PemObject;

const KEY: &str = "bench:tls";
const CONCURRENCY: [usize; 2] = [1, 64];

/// The TLS server the bench script started: its TLS port, its plaintext port and its CA.
struct Server {
    tls_port: u16,
    plain_port: u16,
    ca: String,
}

fn server() -> Option<Server> {
    let tls_port = std::env::var("BENCH_REDIS_TLS_PORT").ok()?.parse().ok()?;
    let plain_port = common::real_port()?;
    let ca = std::env::var("BENCH_TLS_CA").ok()?;
    Some(Server {
        tls_port,
        plain_port,
        ca,
    })
}

fn keeper(server: &Server, as_raw: bool) -> Keeper {
    let ca = server.ca.clone();
    let config = KeeperConfig::default()
        .host("127.0.0.1")
        .port(server.tls_port)
        .configure_all(|d| {
            let d = d.ssl(true).ssl_ca_certs(ca);
            if as_raw {
                d.shared_connections(1).tcp_nodelay(false)
            } else {
                d
            }
        });
    common::tokio_keeper(config)
}

/// redis-rs's own TLS client, trusting the bench's CA.
fn rediss_client(server: &Server) -> redis::Client {
    let ca = std::fs::read(&server.ca).expect("CA file");
    redis::Client::build_with_tls(
        format!("rediss://127.0.0.1:{}/0", server.tls_port),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca),
        },
    )
    .expect("rediss client")
}

fn get_rows(c: &mut Criterion, server: &Server) {
    let rt = Rt::Tokio;
    let keeper = keeper(server, false);
    let as_raw = self::keeper(server, true);
    let raw = tokio_rt()
        .block_on(rediss_client(server).get_multiplexed_async_connection())
        .expect("raw rediss connection");
    rt.block_on(async {
        let mut conn = keeper.get("main").await.expect("get");
        let _: () = conn.set(KEY, "v").await.expect("SET");
    });
    let mut group = c.benchmark_group("tls/get");
    for tasks in CONCURRENCY {
        group.bench_with_input(BenchmarkId::new("raw_rediss", tasks), &tasks, |b, &t| {
            b.iter_custom(|iters| common::raw_get_loop(rt, t, iters, &raw, KEY))
        });
        for (name, keeper) in [("keeper", &keeper), ("keeper_as_raw", &as_raw)] {
            group.bench_with_input(BenchmarkId::new(name, tasks), &tasks, |b, &t| {
                b.iter_custom(|iters| common::shared_get_loop(rt, t, iters, keeper, KEY))
            });
        }
    }
    group.finish();
    rt.block_on(keeper.close());
    rt.block_on(as_raw.close());
}

/// Opens a connection through `transport`, runs redis-rs's handshake and one PING on it.
async fn open_and_ping(transport: &dyn Transport, endpoint: &Endpoint) {
    let stream = transport
        .connect(endpoint, &TcpOptions::default())
        .await
        .expect("connect");
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(None)
        .set_connection_timeout(None);
    let (mut conn, driver) =
        MultiplexedConnection::new_with_config(&Default::default(), stream, config)
            .await
            .expect("handshake");
    let task = tokio::spawn(driver);
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("PING");
    black_box(pong);
    drop(conn);
    task.abort();
}

fn connect_rows(c: &mut Criterion, server: &Server) {
    let rt = tokio_rt();
    let plain: Arc<dyn Transport> = Arc::new(TokioTransport::new(rt.handle().clone()));
    let tls_transport = keeper_tls_transport(&plain, server);
    let tls_endpoint = Endpoint::tcp("127.0.0.1", server.tls_port);
    let plain_endpoint = Endpoint::tcp("127.0.0.1", server.plain_port);
    let rediss = rediss_client(server);
    let redis_plain =
        redis::Client::open(format!("redis://127.0.0.1:{}/0", server.plain_port)).expect("client");
    let mut group = c.benchmark_group("tls/connect");
    group.bench_function("keeper_transport_tls", |b| {
        b.iter(|| rt.block_on(open_and_ping(&tls_transport, &tls_endpoint)))
    });
    group.bench_function("keeper_transport_plain", |b| {
        b.iter(|| rt.block_on(open_and_ping(&*plain, &plain_endpoint)))
    });
    for (name, client) in [("raw_rediss", &rediss), ("raw_redis", &redis_plain)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut conn = client
                        .get_multiplexed_async_connection()
                        .await
                        .expect("connect");
                    let pong: String = redis::cmd("PING")
                        .query_async(&mut conn)
                        .await
                        .expect("PING");
                    black_box(pong);
                })
            })
        });
    }
    group.finish();
}

/// The Keeper's TLS decorator over its tokio transport, configured as the Keeper configures it.
fn keeper_tls_transport(plain: &Arc<dyn Transport>, server: &Server) -> TlsTransport {
    let pem = std::fs::read(&server.ca).expect("CA file");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsTransport::new(plain.clone(), Arc::new(config), None)
}

fn tls(c: &mut Criterion) {
    let Some(server) = server() else {
        eprintln!("no BENCH_REDIS_TLS_PORT / BENCH_TLS_CA: the TLS bench needs scripts/bench.sh");
        return;
    };
    get_rows(c, &server);
    connect_rows(c, &server);
}

criterion_group!(benches, tls);
criterion_main!(benches);
