//! Addresses against a real `redis-server` (each test starts its own on a free loopback port):
//! a Unix socket (by `unix_socket_path` and by `unix://` URL), `REDIS_URL` with an ACL user and
//! a URL-encoded password, `NOPERM` as a per-command error, `WRONGPASS` as `Auth`; under tokio,
//! smol and the blocking API.
//!
//! Needs `redis-server` on the PATH (`scripts/test.sh` installs it).
#![cfg(all(feature = "tokio", feature = "smol", unix))]

#[macro_use]
mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use redis::AsyncCommands;
use redis_keeper::seams::{Endpoint, Runtime};
use redis_keeper::{Error, HealthState, Keeper, KeeperConfig};
use support::harness::{bounded, config_for, keeper};
use support::redis_server::{RedisServer, ServerOptions, APP_PASSWORD_ENCODED};

/// A fresh socket path under the temp directory (short: Unix paths are limited to ~100 bytes).
fn socket_path() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "rk-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A server that also listens on a Unix socket.
fn unix_server() -> (RedisServer, PathBuf) {
    let path = socket_path();
    let server = RedisServer::start(
        ServerOptions::new()
            .arg("unixsocket", path.to_str().unwrap())
            .arg("unixsocketperm", "700"),
    );
    (server, path)
}

/// A Keeper on `rt` with `env` as its whole environment.
fn keeper_with_env(rt: &Runtime, config: KeeperConfig, env: &[(&str, String)]) -> Keeper {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Keeper::builder(config)
        .runtime(rt.clone())
        .env(env)
        .seed(7)
        .build()
        .expect("valid config")
}

// ---------------------------------------------------------------------------------------------
// Unix sockets: the same named databases, pools and stats as TCP.

async fn unix_socket_by_key_and_by_url(rt: Runtime) {
    let (server, path) = unix_server();
    let shown = path.to_str().unwrap().to_owned();
    let config = config_for(&server)
        .configure_all(|d| d.unix_socket_path(shown.clone()))
        .configure("audit", |d| d.url(format!("unix://{shown}?db=10")));
    let keeper = keeper(&rt, config);
    assert_eq!(
        keeper.settings("main").unwrap().endpoint,
        Endpoint::unix(&path)
    );
    for (name, db) in [("main", 0u8), ("knowledge", 1), ("audit", 10)] {
        let mut c = bounded(&rt, "get", keeper.get(name)).await.unwrap();
        assert_eq!(c.db_number(), db);
        let _: () = c.set("via", "unix").await.unwrap();
    }
    {
        let mut ex = bounded(&rt, "get_exclusive", keeper.get_exclusive("jobs"))
            .await
            .unwrap();
        let _: () = ex.set("via", "unix-exclusive").await.unwrap();
    }
    for db in [0, 1, 10] {
        assert_eq!(
            server.get_in_db(db, "via").as_deref(),
            Some("unix"),
            "db {db}"
        );
    }
    assert_eq!(
        server.get_in_db(12, "via").as_deref(),
        Some("unix-exclusive")
    );
    // The Keeper's connections are on the socket: the server sees no TCP client but ours.
    let clients: String = server.query(redis::cmd("CLIENT").arg("LIST"));
    let keeper_clients: Vec<&str> = clients
        .lines()
        .filter(|l| !l.contains("cmd=client"))
        .collect();
    assert!(!keeper_clients.is_empty());
    assert!(
        keeper_clients
            .iter()
            .all(|l| l.contains("addr=/") || l.contains("flags=U")),
        "{clients}"
    );
    let stats = keeper.stats();
    assert!(stats.databases["main"].connections_created >= 1);
    assert_eq!(keeper.pool_stats("jobs").unwrap().created, 1);
    keeper.check_invariants().unwrap();
    keeper.close().await;
    let _ = std::fs::remove_file(&path);
}

#[test]
fn unix_socket_from_blocking_code() {
    let (server, path) = unix_server();
    let config = config_for(&server).configure_all(|d| d.unix_socket_path(path.to_str().unwrap()));
    let keeper = Keeper::builder(config)
        .env(HashMap::<String, String>::new())
        .build()
        .expect("valid config");
    let mut c = keeper.get_blocking("knowledge").unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("blocking")
        .query(&mut c)
        .unwrap();
    drop(c);
    assert_eq!(server.get_in_db(1, "k").as_deref(), Some("blocking"));
    keeper.close_blocking();
    let _ = std::fs::remove_file(&path);
}

// ---------------------------------------------------------------------------------------------
// ACL users through REDIS_URL: an encoded password decodes; NOPERM is one command's error;
// SELECT is not restricted by ACLs; a wrong password is Auth.

fn acl_server() -> RedisServer {
    let server = RedisServer::start(ServerOptions::new());
    server.add_app_user();
    server
}

async fn acl_user_through_redis_url(rt: Runtime) {
    let server = acl_server();
    let url = format!(
        "redis://app:{APP_PASSWORD_ENCODED}@127.0.0.1:{}",
        server.port()
    );
    let keeper = keeper_with_env(&rt, config_for(&server), &[("REDIS_URL", url.clone())]);
    assert!(!format!("{keeper:?}").contains("p@ss"));
    assert_eq!(
        keeper.settings("main").unwrap().username.as_deref(),
        Some("app")
    );
    let mut c = bounded(&rt, "get", keeper.get("main")).await.unwrap();
    let _: () = c.set("app:1", "ok").await.unwrap();
    let who: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(who, "app");
    // NOPERM on one key: a server error for this command only.
    for _ in 0..8 {
        let err = c.set::<_, _, ()>("other", "no").await.unwrap_err();
        assert!(err.to_string().to_uppercase().contains("NOPERM"), "{err}");
    }
    let v: String = c.get("app:1").await.unwrap();
    assert_eq!(v, "ok", "the connection stays after NOPERM");
    drop(c);
    let health = keeper.health().await;
    assert_eq!(
        health.databases["main"],
        HealthState::Healthy,
        "the breaker is not fed"
    );
    let s = &keeper.stats().databases["main"];
    assert_eq!(
        (s.breaker_trips, s.pool.broken_closed, s.connections_failed),
        (0, 0, 0),
        "{s:?}"
    );
    assert!(
        s.connections_created <= 2,
        "only the two shared slots: {s:?}"
    );
    // ACLs do not restrict SELECT: the same user reaches every logical database.
    let mut k = bounded(&rt, "get", keeper.get("knowledge")).await.unwrap();
    let _: () = k.set("app:2", "db1").await.unwrap();
    assert_eq!(server.get_in_db(1, "app:2").as_deref(), Some("db1"));
    assert_eq!(server.get_in_db(0, "app:1").as_deref(), Some("ok"));
    assert_eq!(server.get_in_db(0, "other"), None);
    keeper.close().await;

    // The wrong password: Auth, not retried, never shown.
    let wrong = format!(
        "redis://app:wrong-{APP_PASSWORD_ENCODED}@127.0.0.1:{}",
        server.port()
    );
    let keeper = keeper_with_env(&rt, config_for(&server), &[("REDIS_URL", wrong)]);
    let err = bounded(&rt, "get", keeper.get("main")).await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(!err.to_string().contains("p@ss") && !format!("{err:?}").contains("p@ss"));
    assert_eq!(keeper.stats().databases["main"].retries, 0);
    keeper.close().await;
}

on_both_runtimes! {
    unix_socket_by_key_and_by_url,
    acl_user_through_redis_url,
}
