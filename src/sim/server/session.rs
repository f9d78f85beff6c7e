//! Connection and server commands: SELECT, AUTH, HELLO, CLIENT, INFO, MULTI/EXEC/WATCH, FLUSHALL.

use std::fmt::Write as _;
use std::time::Instant;

use super::commands::{arity_error, int_arg, is, lookup, Session, SYNTAX};
use super::conn::Multi;
use super::keyspace::DATABASES;
use super::resp::{parse_i64, Reply};
use super::role::READONLY;
use super::State;

/// The version the simulator claims to be.
const VERSION: &str = "7.2.4";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

impl State {
    /// Runs a connection or server command for connection `id`. The flag asks to close the
    /// connection after the reply.
    pub(super) fn session(
        &mut self,
        id: u64,
        s: Session,
        args: &[Vec<u8>],
        now: Instant,
    ) -> (Reply, bool) {
        let reply = match s {
            Session::Quit => return (Reply::ok(), true),
            Session::Client => return self.client(id, args),
            Session::Select => self.select(id, args),
            Session::Auth => self.auth(id, args),
            Session::Hello => self.hello(id, args),
            Session::Info => self.info(args, now),
            Session::Multi => self.with_conn(id, |c| {
                c.multi = Some(Multi::default());
                Reply::ok()
            }),
            Session::Exec => self.exec(id, now),
            Session::Discard => self.with_conn(id, |c| match c.multi.take() {
                None => Reply::err("ERR DISCARD without MULTI"),
                Some(_) => {
                    c.watched.clear();
                    c.dirty = false;
                    Reply::ok()
                }
            }),
            Session::Watch => self.watch(id, args, now),
            Session::BlockingPop(right) => self.blocking_pop(id, args, right, now),
            Session::Subscribe(pattern) => self.subscribe(id, args, pattern, now),
            Session::Unsubscribe(pattern) => self.unsubscribe(id, args, pattern, now),
            Session::Publish => self.publish(args, now),
            Session::Role => self.role_reply(),
            Session::Sentinel => self.sentinel_command(id, args),
            Session::Unwatch => self.with_conn(id, |c| {
                c.watched.clear();
                c.dirty = false;
                Reply::ok()
            }),
            Session::FlushAll => {
                match &args[1..] {
                    [] => {}
                    [mode] if is(mode, "async") || is(mode, "sync") => {}
                    _ => return (Reply::err(SYNTAX), false),
                }
                self.dbs.iter_mut().for_each(|db| db.flush());
                Reply::ok()
            }
        };
        (reply, false)
    }

    fn with_conn(&mut self, id: u64, f: impl FnOnce(&mut super::Conn) -> Reply) -> Reply {
        match self.conns.get_mut(&id) {
            Some(c) => f(c),
            None => Reply::err("ERR no such connection"),
        }
    }

    fn select(&mut self, id: u64, args: &[Vec<u8>]) -> Reply {
        let n = match int_arg(&args[1]) {
            Ok(n) => n,
            Err(e) => return e,
        };
        match usize::try_from(n).ok().filter(|n| *n < DATABASES) {
            Some(db) => self.with_conn(id, |c| {
                c.db = db;
                Reply::ok()
            }),
            None => Reply::err("ERR DB index is out of range"),
        }
    }

    /// Whether `user` (the default user when `None`) may log in with `pass`.
    fn credentials_ok(&self, user: Option<&[u8]>, pass: &[u8]) -> bool {
        match user {
            None | Some(b"default") => self.password.as_deref().is_none_or(|p| p == pass),
            Some(u) => self
                .acl_user
                .as_ref()
                .is_some_and(|(au, ap)| au.as_slice() == u && ap.as_slice() == pass),
        }
    }

    fn auth(&mut self, id: u64, args: &[Vec<u8>]) -> Reply {
        let (user, pass) = match args {
            [_, pass] => (None, pass),
            [_, user, pass] => (Some(user.as_slice()), pass),
            _ => return Reply::err(SYNTAX),
        };
        if user.is_none() && self.password.is_none() {
            return Reply::err(
                "ERR AUTH <password> called without any password configured for the default \
                 user. Are you sure your configuration is correct?",
            );
        }
        if !self.credentials_ok(user, pass) {
            return Reply::err(WRONGPASS);
        }
        self.with_conn(id, |c| {
            c.authed = true;
            Reply::ok()
        })
    }

    /// `HELLO [protover [AUTH username password] [SETNAME clientname]]`. This server speaks
    /// RESP2 only: `HELLO 3` answers `-NOPROTO`, as a server without RESP3 would.
    fn hello(&mut self, id: u64, args: &[Vec<u8>]) -> Reply {
        let mut i = 1;
        let mut resp3 = None;
        if let Some(v) = args.get(1) {
            let Some(ver) = parse_i64(v) else {
                return Reply::err("ERR Protocol version is not an integer or out of range");
            };
            if ver != 2 && ver != 3 {
                return Reply::err("NOPROTO unsupported protocol version");
            }
            resp3 = Some(ver == 3);
            i = 2;
        }
        let (mut auth, mut setname) = (None, None);
        while i < args.len() {
            let more = args.len() - i - 1;
            if is(&args[i], "auth") && more >= 2 {
                auth = Some((&args[i + 1], &args[i + 2]));
                i += 3;
            } else if is(&args[i], "setname") && more >= 1 {
                setname = Some(&args[i + 1]);
                i += 2;
            } else {
                let opt = String::from_utf8_lossy(&args[i]);
                return Reply::err(format!("ERR Syntax error in HELLO option '{opt}'"));
            }
        }
        if let Some((user, pass)) = auth {
            if !self.credentials_ok(Some(user), pass) {
                return Reply::err(WRONGPASS);
            }
            self.with_conn(id, |c| {
                c.authed = true;
                Reply::ok()
            });
        }
        let authed = self.conns.get(&id).is_some_and(|c| c.authed);
        if self.password.is_some() && !authed {
            return Reply::err(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise \
                 the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the \
                 client and select the RESP protocol version at the same time",
            );
        }
        if let Some(name) = setname {
            if let Err(e) = self.set_name(id, name) {
                return e;
            }
        }
        if let (Some(on), Some(c)) = (resp3, self.conns.get_mut(&id)) {
            c.resp3 = on;
        }
        let resp3 = self.conns.get(&id).is_some_and(|c| c.resp3);
        let mode = if self.is_sentinel() {
            "sentinel"
        } else {
            "standalone"
        };
        let role = if self.is_replica() {
            "replica"
        } else {
            "master"
        };
        let field = |k: &str| Reply::bulk(k);
        let pairs = vec![
            (field("server"), field("redis")),
            (field("version"), field(VERSION)),
            (field("proto"), Reply::Int(if resp3 { 3 } else { 2 })),
            (field("id"), Reply::Int(id as i64)),
            (field("mode"), field(mode)),
            (field("role"), field(role)),
            (field("modules"), Reply::Array(vec![])),
        ];
        if resp3 {
            return Reply::Map(pairs);
        }
        Reply::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())
    }

    fn set_name(&mut self, id: u64, name: &[u8]) -> Result<(), Reply> {
        if name.iter().any(|b| !(b'!'..=b'~').contains(b)) {
            return Err(Reply::err(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            ));
        }
        if let Some(c) = self.conns.get_mut(&id) {
            c.name = (!name.is_empty()).then(|| name.to_vec());
        }
        Ok(())
    }

    /// `CLIENT SETNAME | GETNAME | ID | SETINFO | KILL ID <id>`.
    fn client(&mut self, id: u64, args: &[Vec<u8>]) -> (Reply, bool) {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        let arity = match sub.as_str() {
            "setname" => 3,
            "getname" | "id" => 2,
            "setinfo" => 4,
            "kill" => 4,
            _ => {
                let shown = String::from_utf8_lossy(&args[1]);
                let msg = format!("ERR unknown subcommand '{shown}'. Try CLIENT HELP.");
                return (Reply::err(msg), false);
            }
        };
        if args.len() != arity {
            return (arity_error(&format!("client|{sub}")), false);
        }
        let reply = match sub.as_str() {
            "setname" => match self.set_name(id, &args[2]) {
                Ok(()) => Reply::ok(),
                Err(e) => e,
            },
            "getname" => match self.conns.get(&id).and_then(|c| c.name.clone()) {
                Some(name) => Reply::Bulk(name),
                None => Reply::Nil,
            },
            "id" => Reply::Int(id as i64),
            "setinfo" if is(&args[2], "lib-name") || is(&args[2], "lib-ver") => Reply::ok(),
            "setinfo" => {
                let attr = String::from_utf8_lossy(&args[2]);
                Reply::err(format!("ERR Unrecognized option '{attr}'"))
            }
            _ => {
                // CLIENT KILL ID <id>: the own connection closes after the reply.
                if !is(&args[2], "id") {
                    return (Reply::err(SYNTAX), false);
                }
                let target = match parse_i64(&args[3]).and_then(|n| u64::try_from(n).ok()) {
                    Some(t) => t,
                    None => return (Reply::err("ERR client-id should be greater than 0"), false),
                };
                if target == id {
                    return (Reply::Int(1), true);
                }
                let killed = self.kill(target);
                Reply::Int(i64::from(killed))
            }
        };
        (reply, false)
    }

    fn watch(&mut self, id: u64, args: &[Vec<u8>], now: Instant) -> Reply {
        let Some(db) = self.conns.get(&id).map(|c| c.db) else {
            return Reply::err("ERR no such connection");
        };
        let mut deadlines = Vec::new();
        for key in &args[1..] {
            // Looking the key up drops it if already expired; flag that before watching it.
            let at = self.dbs[db].get(key, now).and_then(|e| e.expires);
            deadlines.push(((db, key.clone()), at));
        }
        self.flag_dirty();
        self.with_conn(id, |c| {
            c.watched.extend(deadlines);
            Reply::ok()
        })
    }

    fn exec(&mut self, id: u64, now: Instant) -> Reply {
        let Some(c) = self.conns.get_mut(&id) else {
            return Reply::err("ERR no such connection");
        };
        let Some(multi) = c.multi.take() else {
            return Reply::err("ERR EXEC without MULTI");
        };
        let watched = std::mem::take(&mut c.watched);
        let dirty = std::mem::take(&mut c.dirty);
        // Writes queued while a master, and the server is a replica now (Redis 7's check).
        let writes = || {
            multi
                .queue
                .iter()
                .any(|a| lookup(&a[0]).is_some_and(|s| s.write))
        };
        if self.is_replica() && writes() {
            return Reply::err(format!(
                "EXECABORT Transaction discarded because of: {READONLY}"
            ));
        }
        if multi.aborted {
            return Reply::err("EXECABORT Transaction discarded because of previous errors.");
        }
        let expired = watched.values().any(|at| at.is_some_and(|t| t <= now));
        if dirty || expired {
            return Reply::NilArray;
        }
        let mut replies = Vec::with_capacity(multi.queue.len());
        // Inside EXEC a blocking pop does not block (Redis answers nil at once).
        self.in_exec = true;
        for args in &multi.queue {
            let reply = match lookup(&args[0]) {
                Some(spec) => self.run(id, spec, args, now).0,
                None => Reply::err("ERR unknown command"),
            };
            replies.push(reply);
        }
        self.in_exec = false;
        Reply::Array(replies)
    }

    fn info(&mut self, args: &[Vec<u8>], now: Instant) -> Reply {
        let all = args.len() < 2
            || args[1..]
                .iter()
                .any(|a| is(a, "all") || is(a, "everything") || is(a, "default"));
        let want = |name: &str| all || args[1..].iter().any(|a| is(a, name));
        let sentinel = self.is_sentinel();
        let mut sections = Vec::new();
        if want("server") {
            let uptime = now.saturating_duration_since(self.started).as_secs();
            let (mode, port) = if sentinel {
                ("sentinel", 26379)
            } else {
                ("standalone", 6379)
            };
            sections.push(format!(
                "# Server\r\nredis_version:{VERSION}\r\nredis_mode:{mode}\r\nos:simulated\r\n\
                 tcp_port:{port}\r\nuptime_in_seconds:{uptime}\r\n"
            ));
        }
        if want("clients") {
            sections.push(format!(
                "# Clients\r\nconnected_clients:{}\r\n",
                self.connected()
            ));
        }
        if want("persistence") && !sentinel {
            let loading = u8::from(self.is_loading(now));
            sections.push(format!("# Persistence\r\nloading:{loading}\r\n"));
        }
        if want("stats") {
            sections.push(format!(
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n",
                self.accepted, self.commands
            ));
        }
        if want("replication") && !sentinel {
            sections.push(self.replication_info());
        }
        if want("sentinel") && sentinel {
            sections.push(self.sentinel_info());
        }
        if want("keyspace") && !sentinel {
            let mut s = String::from("# Keyspace\r\n");
            for (i, db) in self.dbs.iter_mut().enumerate() {
                let keys = db.len(now);
                if keys > 0 {
                    let expires = db.expiring(now);
                    let _ = write!(s, "db{i}:keys={keys},expires={expires},avg_ttl=0\r\n");
                }
            }
            sections.push(s);
        }
        Reply::Bulk(sections.join("\r\n").into_bytes())
    }
}
