//! A real `redis-server` for one test: started on a free loopback port in a directory of its own,
//! killed when dropped. Only loopback addresses; every wait has a deadline.
//!
//! ```ignore
//! let server = RedisServer::start(ServerOptions::new().password("s3cret"));
//! let n: u64 = server.info_u64("total_connections_received");
//! ```

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The password of the ACL user [`RedisServer::add_app_user`] adds, with characters a URL must
/// encode, and its URL-encoded form.
pub const APP_PASSWORD: &str = "p@ss:w/rd%1";
pub const APP_PASSWORD_ENCODED: &str = "p%40ss%3Aw%2Frd%251";

/// How long a server may take to answer after being spawned.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Read/write timeout of the helper's own connections (generous: `DEBUG RELOAD` blocks).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// How to start the server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    password: Option<String>,
    args: Vec<(String, String)>,
}

impl ServerOptions {
    /// No password, no extra arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// `--requirepass password` (letters, digits and dashes only: it goes into a URL).
    pub fn password(mut self, password: &str) -> Self {
        assert!(
            password
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "keep test passwords URL-safe"
        );
        self.password = Some(password.to_string());
        self
    }

    /// An extra `--name value` argument, on every start and restart.
    pub fn arg(mut self, name: &str, value: &str) -> Self {
        self.args.push((name.to_string(), value.to_string()));
        self
    }
}

/// A running `redis-server` owned by one test.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    options: ServerOptions,
    child: Option<Child>,
    paused: bool,
    /// After [`RedisServer::stop_for_good`]: a socket bound to the port without listening, so
    /// connects are refused and no other server can take the port.
    port_holder: Option<socket2::Socket>,
    /// Connections this helper opened since the last (re)start: `total_connections_received`
    /// minus this is what everyone else (the Keeper) opened.
    own_connections: AtomicU64,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits (bounded) until it answers.
    pub fn start(options: ServerOptions) -> RedisServer {
        let port = free_port();
        let dir = unique_dir(port);
        let mut server = RedisServer {
            port,
            dir,
            options,
            child: None,
            paused: false,
            port_holder: None,
            own_connections: AtomicU64::new(0),
        };
        server.spawn(&[]);
        server
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory (its `dump.rdb` lives there).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Kills the server and starts it again on the same port, in the same directory (so a
    /// `dump.rdb` saved before is loaded again), with `extra` arguments for this start only.
    /// Returns once the new server answers (possibly with `-LOADING`).
    pub fn restart_with(&mut self, extra: &[(&str, &str)]) {
        self.stop();
        self.spawn(extra);
    }

    /// [`RedisServer::restart_with`] without extra arguments.
    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// Kills the server, leaves the port closed for `down` (connects are refused), then starts it
    /// again as [`RedisServer::restart`] does.
    pub fn restart_after(&mut self, down: Duration) {
        self.stop();
        std::thread::sleep(down);
        self.spawn(&[]);
    }

    /// Freezes the server (SIGSTOP): the kernel still accepts connections, nothing answers.
    pub fn pause(&mut self) {
        signal(self.pid(), "-STOP");
        self.paused = true;
        self.wait_for_state(|s| s == 'T' || s == 't', "stopped");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&mut self) {
        signal(self.pid(), "-CONT");
        self.paused = false;
        self.wait_for_state(|s| s != 'T' && s != 't', "running");
    }

    /// A new synchronous connection to `db` (counted as the helper's own).
    pub fn connection_to(&self, db: u8) -> redis::Connection {
        let auth = match &self.options.password {
            Some(p) => format!(":{p}@"),
            None => String::new(),
        };
        let url = format!("redis://{auth}127.0.0.1:{}/{db}", self.port);
        let client = redis::Client::open(url).expect("valid url");
        self.own_connections.fetch_add(1, Ordering::Relaxed);
        let conn = client
            .get_connection_with_timeout(CLIENT_TIMEOUT)
            .expect("raw connection to the test server");
        conn.set_read_timeout(Some(CLIENT_TIMEOUT))
            .expect("timeout");
        conn.set_write_timeout(Some(CLIENT_TIMEOUT))
            .expect("timeout");
        conn
    }

    /// A new synchronous connection to db 0.
    pub fn connection(&self) -> redis::Connection {
        self.connection_to(0)
    }

    /// Runs one command on a fresh db-0 connection.
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        cmd.query(&mut self.connection())
            .unwrap_or_else(|e| panic!("{cmd:?} on the test server: {e}"))
    }

    /// `GET key` in logical database `db`, checked server-side.
    pub fn get_in_db(&self, db: u8, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.connection_to(db))
            .expect("GET on the test server")
    }

    /// One numeric field of `INFO everything` (e.g. `total_connections_received`).
    pub fn info_u64(&self, field: &str) -> u64 {
        Self::info_u64_on(&mut self.connection(), field)
    }

    /// Connections accepted since the last (re)start that this helper did not open itself.
    pub fn foreign_connections_received(&self) -> u64 {
        // Read the counter first: the INFO connection itself counts in it.
        let total = self.info_u64("total_connections_received");
        total.saturating_sub(self.own_connections.load(Ordering::Relaxed))
    }

    /// Adds the ACL user `app` ([`APP_PASSWORD`]), allowed every command on `app:*` keys only.
    pub fn add_app_user(&self) {
        let _: () = self.query(
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg("app")
                .arg("on")
                .arg(format!(">{APP_PASSWORD}"))
                .arg("~app:*")
                .arg("+@all"),
        );
    }

    /// How many TLS handshakes the server refused since the last (re)start: its log's
    /// "Error accepting a client connection" lines (a refused handshake never becomes a
    /// client, so `total_connections_received` does not count it).
    pub fn failed_tls_accepts(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("Error accepting a client connection"))
            .count()
    }

    /// The `db=` of every client connection but the helper's own, from `CLIENT LIST`.
    pub fn client_dbs(&self) -> Vec<u8> {
        let list: String = self.query(redis::cmd("CLIENT").arg("LIST"));
        list.lines()
            .filter(|l| !l.contains(" cmd=client|list"))
            .filter_map(|l| {
                l.split(' ')
                    .find_map(|f| f.strip_prefix("db="))
                    .and_then(|d| d.parse().ok())
            })
            .collect()
    }

    /// `CLIENT KILL TYPE normal` (skips the caller): how many connections were killed.
    pub fn kill_normal_clients(&self) -> u64 {
        self.query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"))
    }

    /// A raw `PING` on a new socket: the first line of the reply (`+PONG`, `-LOADING …`).
    pub fn raw_ping(&self) -> std::io::Result<String> {
        let mut sock = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500))?;
        self.own_connections.fetch_add(1, Ordering::Relaxed);
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        sock.set_write_timeout(Some(Duration::from_secs(2)))?;
        sock.write_all(b"PING\r\n")?;
        read_line(&mut sock)
    }

    /// Waits (bounded) until a raw `PING` gets `+PONG` (loading, if any, is over).
    pub fn wait_until_loaded(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(reply) = self.raw_ping() {
                if reply == "+PONG" {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server not loaded within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server for good: the port stays closed until the helper is dropped (held by a
    /// bound socket that does not listen, so every connect is refused at once and no other
    /// test's server can be handed the port).
    pub fn stop_for_good(&mut self) {
        self.stop();
        let addr = socket2::SockAddr::from(self.addr());
        let deadline = Instant::now() + START_TIMEOUT;
        let holder = loop {
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("socket");
            sock.set_reuse_address(true).expect("SO_REUSEADDR");
            match sock.bind(&addr) {
                Ok(()) => break sock,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "cannot hold port {} closed: {e}",
                    self.port
                ),
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.port_holder = Some(holder);
    }

    /// A new synchronous connection to db 0 whose reads may wait up to `timeout` (for commands
    /// that block the server, like `DEBUG RELOAD`).
    pub fn connection_with_timeout(&self, timeout: Duration) -> redis::Connection {
        let conn = self.connection();
        conn.set_read_timeout(Some(timeout)).expect("timeout");
        conn
    }

    /// Prepares a slow reload: `keys` keys of `value_bytes` bytes each (stored uncompressed, so
    /// the server answers other clients every key or so while it loads them) and a load delay of
    /// `per_key` for each key. [`RedisServer::reload_in_background`] then loads for about
    /// `keys × per_key`.
    pub fn prepare_slow_reload(&self, keys: u32, value_bytes: u32, per_key: Duration) {
        let _: () = self.query(
            redis::cmd("DEBUG")
                .arg("POPULATE")
                .arg(keys)
                .arg("key")
                .arg(value_bytes),
        );
        for (name, value) in [
            ("rdbcompression", "no".to_string()),
            ("loading-process-events-interval-bytes", "1024".to_string()),
            ("key-load-delay", per_key.as_micros().to_string()),
        ] {
            let _: () = self.query(redis::cmd("CONFIG").arg("SET").arg(name).arg(value));
        }
    }

    /// Starts `DEBUG RELOAD` (save, then load the dataset again: a real `LOADING`) on a thread of
    /// its own and returns once the server answers `-LOADING`. The thread's result is the
    /// command's; it gives up after `limit`.
    pub fn reload_in_background(
        &self,
        limit: Duration,
    ) -> std::thread::JoinHandle<Result<(), String>> {
        let mut conn = self.connection_with_timeout(limit);
        let reload = std::thread::spawn(move || {
            redis::cmd("DEBUG")
                .arg("RELOAD")
                .query::<()>(&mut conn)
                .map_err(|e| e.to_string())
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self
                .raw_ping()
                .is_ok_and(|reply| reply.starts_with("-LOADING"))
            {
                return reload;
            }
            assert!(
                !reload.is_finished(),
                "DEBUG RELOAD ended before LOADING was seen: {:?}",
                reload.join()
            );
            assert!(Instant::now() < deadline, "server not loading in time");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Opens `n` raw connections that only sit there (counted as the helper's own), each
    /// checked to be accepted (authenticated when the server has a password): they occupy
    /// client slots until dropped.
    pub fn occupy(&self, n: usize) -> Vec<Occupant> {
        (0..n)
            .map(|_| {
                let mut sock = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(2))
                    .expect("occupant connects");
                self.own_connections.fetch_add(1, Ordering::Relaxed);
                sock.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                if let Some(password) = &self.options.password {
                    sock.write_all(format!("AUTH {password}\r\n").as_bytes())
                        .expect("write");
                    let reply = read_line(&mut sock).expect("AUTH reply");
                    assert_eq!(reply, "+OK", "occupant AUTH");
                }
                sock.write_all(b"CLIENT ID\r\n").expect("write");
                let reply = read_line(&mut sock).expect("CLIENT ID reply");
                let id = reply
                    .strip_prefix(':')
                    .and_then(|id| id.parse().ok())
                    .unwrap_or_else(|| panic!("occupant not accepted: {reply}"));
                Occupant { _sock: sock, id }
            })
            .collect()
    }

    /// The client ids in `CLIENT LIST`, as seen on `conn`.
    pub fn client_ids_on(conn: &mut redis::Connection) -> Vec<u64> {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(conn)
            .expect("CLIENT LIST");
        list.lines()
            .filter_map(|l| {
                l.split(' ')
                    .find_map(|f| f.strip_prefix("id="))
                    .and_then(|id| id.parse().ok())
            })
            .collect()
    }

    /// One numeric field of `INFO everything`, read on `conn` (no new connection: for when the
    /// server accepts no more clients).
    pub fn info_u64_on(conn: &mut redis::Connection, field: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("everything")
            .query(conn)
            .expect("INFO");
        let prefix = format!("{field}:");
        info.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("INFO has no field {field}"))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("INFO field {field}: {e}"))
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn spawn(&mut self, extra: &[(&str, &str)]) {
        let log = File::create(self.dir.join("redis.log")).expect("log file");
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--enable-debug-command")
            .arg("yes")
            .arg("--loglevel")
            .arg("warning");
        if let Some(password) = &self.options.password {
            cmd.arg("--requirepass").arg(password);
        }
        let args = self
            .options
            .args
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied());
        for (name, value) in args {
            cmd.arg(format!("--{name}")).arg(value);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run redis-server ({e}); install it (scripts/test.sh does)")
        });
        self.child = Some(child);
        self.paused = false;
        self.own_connections.store(0, Ordering::Relaxed);
        self.wait_until_up();
    }

    /// Waits (bounded) until the server answers a raw PING with anything (`+PONG`, `-LOADING`,
    /// `-NOAUTH`); fails with the server's log if it exits or stays silent.
    fn wait_until_up(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait"))
            {
                panic!("redis-server exited ({status}):\n{}", self.log());
            }
            if let Ok(reply) = self.raw_ping() {
                if reply.starts_with('+') || reply.starts_with('-') {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until `/proc/<pid>/stat` shows a state matching `ok` (Linux; elsewhere
    /// returns at once).
    fn wait_for_state(&self, ok: impl Fn(char) -> bool, what: &str) {
        let path = format!("/proc/{}/stat", self.pid());
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let Ok(stat) = std::fs::read_to_string(&path) else {
                return;
            };
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            match state {
                Some(s) if ok(s) => return,
                None => return,
                Some(_) => {}
            }
            assert!(Instant::now() < deadline, "server not {what} in time");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL first: a stopped process dies of it too, and a paused server must not
            // get a moment to answer what queued up while it was stopped. Then SIGCONT, so a
            // stopped process can never linger.
            let _ = child.kill();
            if self.paused {
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .arg(child.id().to_string())
                    .status();
                self.paused = false;
            }
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port free now, for a server about to bind it: below the kernel's ephemeral range
/// (32768–60999 by default), so no client connection's local port can take it first (the bind
/// then fails with "Address already in use"), and never the same one twice in this process.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    static NEXT: AtomicU64 = AtomicU64::new(0);
    const LOW: u64 = 20_000;
    const SPAN: u64 = 12_000;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let seed = u64::from(std::process::id()) * 7_919 + nanos;
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    // Bounded: SPAN candidates at most, then the kernel's choice.
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (seed + n * 7_907) % SPAN) as u16;
        if !handed.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed.push(port);
            return port;
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local addr").port()
}

fn unique_dir(port: u16) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "redis-keeper-test-{}-{}-{port}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test server directory");
    dir
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// A raw connection holding a client slot (see [`RedisServer::occupy`]); closed when dropped.
#[derive(Debug)]
pub struct Occupant {
    _sock: TcpStream,
    /// Its `CLIENT ID`.
    pub id: u64,
}

/// One reply line (without CRLF), bounded to 512 bytes.
fn read_line(sock: &mut TcpStream) -> std::io::Result<String> {
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while reply.len() < 512 {
        if sock.read(&mut byte)? == 0 {
            break;
        }
        if byte[0] == b'\n' {
            break;
        }
        reply.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&reply).trim_end().to_string())
}
