//! A Keeper, some traffic, and a minimal HTTP endpoint serving its Prometheus metrics.
//!
//! - `cargo run --example metrics` runs the traffic on the embedded simulated Redis;
//! - `REDIS_URL=redis://127.0.0.1:6379 cargo run --example metrics` on a real server.
//!
//! Then `curl http://127.0.0.1:9898/metrics` (`METRICS_PORT` to change the port; loopback only).
//!
//! The endpoint is the standard library's `TcpListener`: one route, one GET per scrape, and no
//! dependency to add. In a service, mount `keeper.metrics_text()` on the web framework it
//! already has (`text/plain; version=0.0.4`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use redis::AsyncCommands;
use redis_keeper::sim::Sim;
use redis_keeper::{Keeper, KeeperConfig};

fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_default();
    let port: u16 = std::env::var("METRICS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9898);
    // Kept alive while serving: the simulator's executor or the tokio runtime.
    let (keeper, _sim, _tokio) = if url.trim().is_empty() {
        let sim = Sim::new(7);
        let redis = sim.redis();
        let keeper = sim
            .keeper_builder(KeeperConfig::default(), Arc::new(redis.transport()))
            .build()
            .expect("config");
        sim.block_on(traffic(&keeper));
        (keeper, Some(sim), None)
    } else {
        let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
        let keeper = rt
            .block_on(async { Keeper::builder(KeeperConfig::default()).build() })
            .unwrap_or_else(|e| {
                eprintln!("metrics: {e}");
                std::process::exit(2)
            });
        rt.block_on(traffic(&keeper));
        (keeper, None, Some(rt))
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
        eprintln!("metrics: cannot listen on 127.0.0.1:{port}: {e}");
        std::process::exit(2)
    });
    println!("serving http://127.0.0.1:{port}/metrics (Ctrl-C to stop)");
    serve(&listener, &keeper, None);
}

/// A few commands on two databases, and one error reply.
pub async fn traffic(keeper: &Keeper) {
    for db in ["main", "knowledge"] {
        let mut c = keeper.get(db).await.expect("get");
        for i in 0..10 {
            let _: () = c.set(format!("metrics:{i}"), i).await.expect("SET");
        }
        let _: () = c.set("metrics:list", "not a list").await.expect("SET");
        let _ = c.lpush::<_, _, i64>("metrics:list", "x").await; // WRONGTYPE: an error reply
    }
}

/// Answers `requests` HTTP requests (every one when `None`): `GET /metrics` with the Keeper's
/// exposition, anything else with 404.
pub fn serve(listener: &TcpListener, keeper: &Keeper, requests: Option<usize>) {
    for (served, stream) in listener.incoming().enumerate() {
        match stream {
            Ok(stream) => {
                if let Err(e) = respond(stream, keeper) {
                    eprintln!("metrics: a request failed: {e}");
                }
            }
            Err(e) => eprintln!("metrics: accept failed: {e}"),
        }
        if requests.is_some_and(|n| served + 1 >= n) {
            return;
        }
    }
}

/// Reads one request and writes its response.
fn respond(stream: TcpStream, keeper: &Keeper) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The headers, up to the empty line (a bounded number: this serves scrapers, not browsers).
    let mut headers = HashMap::new();
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = if method == "GET" && path == "/metrics" {
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            keeper.metrics_text(),
        )
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "only GET /metrics\n".to_owned(),
        )
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
