//! The blocking API against a real `redis-server` started by each test on a free loopback port:
//! a sync-only program (no runtime), many threads on a small pool, `PoolTimeout` at the deadline,
//! a restart, `LOADING`, socket options, the breaker shared with async callers, and calls from
//! inside tokio. Skipped (with a message) when `redis-server` is not installed.
#![cfg(any(feature = "tokio", feature = "smol"))]

use std::collections::{HashMap, HashSet};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Commands;
use redis_keeper::{Error, Keeper, KeeperConfig};

struct Server {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Starts `redis-server` on a free port, or `None` when it is not installed.
    fn start(tag: &str) -> Option<Server> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("redis-server not installed: skipping");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("keeper-blocking-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = Server {
            port,
            dir,
            child: None,
        };
        server.spawn(&[]);
        Some(server)
    }

    fn spawn(&mut self, extra: &[&str]) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--dbfilename",
                "dump.rdb",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        // Bounded wait until it accepts connections.
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self, extra: &[&str]) {
        self.stop();
        self.spawn(extra);
    }

    fn config(&self, max: u32) -> KeeperConfig {
        KeeperConfig::default()
            .port(self.port)
            .host("127.0.0.1")
            .configure_all(|d| {
                d.max_connections(max)
                    .shared_connections(1)
                    .retry_multiplier(Duration::from_millis(100))
                    .retry_min(Duration::from_millis(100))
                    .retry_max(Duration::from_millis(400))
                    .loading_poll_interval(Duration::from_millis(100))
            })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn keeper(config: KeeperConfig) -> Keeper {
    Keeper::builder(config)
        .env(HashMap::<String, String>::new())
        .build()
        .expect("valid config")
}

#[test]
fn a_sync_only_program_shares_a_small_pool_between_many_threads() {
    let Some(server) = Server::start("threads") else {
        return;
    };
    // No runtime anywhere in this test: the Keeper falls back to smol's own threads.
    let keeper = keeper(server.config(4));
    assert_eq!(keeper.runtime_name(), "smol");
    let in_use: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (keeper, in_use) = (keeper.clone(), in_use.clone());
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let mut c = keeper.get_blocking("main").unwrap();
                    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut c).unwrap();
                    assert!(
                        in_use.lock().unwrap().insert(id),
                        "connection {id} lent twice"
                    );
                    let _: i64 = c.incr("counter", 1).unwrap();
                    assert!(in_use.lock().unwrap().remove(&id));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let mut c = keeper.get_blocking("main").unwrap();
    let total: i64 = c.get("counter").unwrap();
    assert_eq!(total, 16 * 25);
    let stats = keeper.pool_stats("main").unwrap();
    assert!(stats.created <= 4, "{stats:?}");
    let (n,): (i64,) = redis::pipe()
        .atomic()
        .incr("counter", 1)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 401);
    drop(c);
    let db = &keeper.stats().databases["main"];
    assert!(db.successful_operations >= 16 * 25 * 2, "{db:?}");
    keeper.close_blocking();
    assert!(matches!(keeper.get_blocking("main"), Err(Error::Closed)));
}

#[test]
fn pool_timeout_arrives_at_the_deadline() {
    let Some(server) = Server::start("timeout") else {
        return;
    };
    let config = server
        .config(2)
        .configure_all(|d| d.pool_wait_timeout(Duration::from_millis(300)));
    let keeper = keeper(config);
    let _a = keeper.get_blocking("main").unwrap();
    let _b = keeper.get_blocking("main").unwrap();
    let t0 = Instant::now();
    let err = keeper.get_blocking("main").unwrap_err();
    let waited = t0.elapsed();
    assert!(matches!(err, Error::PoolTimeout { .. }), "{err}");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_millis(1_500), "{waited:?}");
}

#[test]
fn a_restart_fails_the_command_in_flight_then_reconnects() {
    let Some(mut server) = Server::start("restart") else {
        return;
    };
    let keeper = keeper(server.config(4));
    let mut c = keeper.get_blocking("main").unwrap();
    let _: () = c.set("k", 1).unwrap();
    server.restart(&[]);
    // The old socket is dead: the command fails and the connection is poisoned, not re-pooled.
    assert!(c.get::<_, Option<i64>>("k").is_err());
    assert!(!redis::ConnectionLike::is_open(&c));
    drop(c);
    let mut c = keeper.get_blocking("main").unwrap();
    let _: () = c.set("k", 2).unwrap();
    let v: i64 = c.get("k").unwrap();
    assert_eq!(v, 2);
    let stats = keeper.pool_stats("main").unwrap();
    assert_eq!(stats.created, 2, "{stats:?}");
}

#[test]
fn a_blocking_caller_rides_out_loading_after_a_restart() {
    let Some(mut server) = Server::start("loading") else {
        return;
    };
    let keeper = keeper(server.config(4));
    // 20 000 keys saved, then reloaded at 100 µs per key: about 2 s of LOADING.
    for batch in 0..20 {
        keeper
            .pipeline_blocking::<(), _>("main", |p| {
                for i in 0..1_000 {
                    p.set(format!("key:{batch}:{i}"), i).ignore();
                }
            })
            .unwrap();
    }
    let mut c = keeper.get_blocking("main").unwrap();
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    drop(c);
    keeper.close_blocking();
    server.restart(&[
        "--key-load-delay",
        "100",
        "--loading-process-events-interval-bytes",
        "1024",
    ]);
    let keeper = self::keeper(server.config(4));
    let t0 = Instant::now();
    let mut c = keeper.get_blocking("main").unwrap();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 20_000);
    let stats = &keeper.stats().databases["main"];
    assert_eq!(
        stats.loading_episodes,
        1,
        "{stats:?} after {:?}",
        t0.elapsed()
    );
    assert_eq!(stats.breaker_trips, 0);
}

/// The keepalive timer of the client sockets connected to `port`, as `ss` reports it.
fn client_socket_timers(port: u16) -> Option<Vec<String>> {
    let out = Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .arg(format!("( dport = :{port} )"))
        .output()
        .ok()?;
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn blocking_sockets_have_keepalive_on() {
    let Some(server) = Server::start("keepalive") else {
        return;
    };
    let keeper = keeper(server.config(4));
    let _a = keeper.get_blocking("main").unwrap();
    let _b = keeper.get_blocking_shared("main").unwrap();
    let Some(lines) = client_socket_timers(server.port) else {
        eprintln!("ss not available: skipping the socket check");
        return;
    };
    assert_eq!(lines.len(), 2, "{lines:?}");
    // Idle 600 s: the first keepalive probe is due in (almost) ten minutes.
    assert!(
        lines
            .iter()
            .all(|l| l.contains("timer:(keepalive,9min") || l.contains("timer:(keepalive,10min")),
        "{lines:?}"
    );
}

#[test]
fn the_breaker_is_shared_with_async_callers() {
    let Some(mut server) = Server::start("breaker") else {
        return;
    };
    let config = server
        .config(4)
        .configure_all(|d| d.breaker_failure_threshold(2).retry_attempts(2));
    let keeper = keeper(config);
    server.stop();
    // Async (on smol) makes two failed attempts: the breaker opens.
    let err = smol::block_on(keeper.get("main")).unwrap_err();
    assert!(matches!(err, Error::Connect { attempts: 2, .. }), "{err}");
    // The blocking caller of the same database is refused at once.
    let t0 = Instant::now();
    let err = keeper.get_blocking("main").unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err}");
    assert!(t0.elapsed() < Duration::from_millis(100));
    let db = &keeper.stats().databases["main"];
    assert_eq!(db.breaker_trips, 1);
    assert!(db.rejected_while_open >= 1);
}

#[cfg(feature = "tokio")]
#[test]
fn inside_tokio_blocking_calls_work_from_threads_and_are_refused_where_they_would_deadlock() {
    let Some(server) = Server::start("tokio") else {
        return;
    };
    // A current-thread runtime: blocking on its own thread would deadlock, so it is refused.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keeper = rt.block_on(async { self::keeper(server.config(4)) });
    assert_eq!(keeper.runtime_name(), "tokio");
    let err = rt
        .block_on(async { keeper.get_blocking("main") })
        .unwrap_err();
    assert!(matches!(err, Error::BlockingInAsync), "{err}");
    // From spawn_blocking it works (the runtime keeps running meanwhile) …
    let k = keeper.clone();
    let v: i64 = rt
        .block_on(async move {
            tokio::task::spawn_blocking(move || {
                let mut c = k.get_blocking("main").unwrap();
                c.incr::<_, _, i64>("n", 1).unwrap()
            })
            .await
        })
        .unwrap();
    assert_eq!(v, 1);
    drop(rt);

    // A multi-threaded runtime: from a task it waits in block_in_place; from a plain thread, too.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keeper = rt.block_on(async { self::keeper(server.config(4)) });
    let k = keeper.clone();
    let v: i64 = rt
        .block_on(async move {
            tokio::spawn(async move {
                let mut c = k.get_blocking("main").unwrap();
                c.incr::<_, _, i64>("n", 1).unwrap()
            })
            .await
        })
        .unwrap();
    assert_eq!(v, 2);
    let k = keeper.clone();
    let v = std::thread::spawn(move || {
        let mut c = k.get_blocking("main").unwrap();
        c.incr::<_, _, i64>("n", 1).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(v, 3);
}
