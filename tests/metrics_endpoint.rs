//! The example's `/metrics` endpoint (examples/metrics.rs) scraped over HTTP, against a real
//! `redis-server` and on the simulator; the exposition passes `promtool check metrics`
//! (Debian's `prometheus` package; `scripts/test.sh` installs it).
#![cfg(all(feature = "sim", feature = "tokio"))]
#![allow(dead_code)]

#[macro_use]
mod support;

#[path = "../examples/metrics.rs"]
mod example;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use redis_keeper::seams::Runtime;
use redis_keeper::sim::Sim;
use redis_keeper::{Keeper, KeeperConfig};
use support::harness::{config_for, keeper};
use support::redis_server::{RedisServer, ServerOptions};

/// One HTTP GET of `path` on 127.0.0.1:`port`: the status line, headers and body.
fn get(port: u16, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

/// `promtool check metrics` on `text`: its verdict and what it printed.
fn promtool(text: &str) -> (bool, String) {
    let tool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    let mut child = Command::new(&tool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {tool} ({e}); install Debian's `prometheus` (scripts/test.sh does)")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

/// Serves two requests of the example's endpoint for `keeper` and scrapes it.
fn scrape(keeper: &Keeper) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = keeper.clone();
    let server = std::thread::spawn(move || example::serve(&listener, &served, Some(2)));
    let (status, headers, body) = get(port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.contains("text/plain; version=0.0.4"), "{headers}");
    let (status, _, _) = get(port, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    server.join().unwrap();
    body
}

#[test]
fn the_endpoint_serves_a_valid_exposition_of_a_real_server() {
    let server = RedisServer::start(ServerOptions::new());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let keeper = rt.block_on(async {
        let keeper = keeper(&Runtime::tokio(), config_for(&server));
        example::traffic(&keeper).await;
        keeper
    });
    let body = scrape(&keeper);
    assert!(
        body.contains(r#"redis_keeper_commands_total{db="main",result="ok"} 11"#),
        "{body}"
    );
    assert!(body.contains(r#"redis_keeper_command_errors_total{db="knowledge",kind="server"} 1"#));
    let (ok, said) = promtool(&body);
    assert!(ok, "promtool check metrics failed:\n{said}\n{body}");
    assert!(
        !body.contains(&format!(":{}", server.port())) && !body.contains("127.0.0.1"),
        "no address in the metrics"
    );
    rt.block_on(keeper.close());
}

#[test]
fn the_endpoint_serves_the_simulated_keeper_too() {
    let sim = Sim::new(3);
    let redis = sim.redis();
    let keeper = sim
        .keeper_builder(KeeperConfig::default(), Arc::new(redis.transport()))
        .build()
        .unwrap();
    sim.block_on(example::traffic(&keeper));
    let body = scrape(&keeper);
    assert!(body.contains(r#"redis_keeper_commands_total{db="knowledge",result="error"} 1"#));
    let (ok, said) = promtool(&body);
    assert!(ok, "promtool check metrics failed:\n{said}");
}

#[test]
fn promtool_rejects_a_broken_exposition() {
    let (ok, _) = promtool("# TYPE x counter\nx{db=\"main\" 1\n");
    assert!(
        !ok,
        "promtool accepted a malformed line: the check above could not fail"
    );
}
