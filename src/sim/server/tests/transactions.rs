//! MULTI / EXEC / DISCARD / WATCH semantics.

use std::time::Duration;

use super::{cmd, connected};

#[test]
fn multi_exec_queues_and_runs() {
    let (sim, _, _, mut c) = connected(1);
    assert_eq!(cmd(&mut c, &["MULTI"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["SET", "a", "1"]), "+QUEUED\r\n");
    assert_eq!(cmd(&mut c, &["INCR", "a"]), "+QUEUED\r\n");
    assert_eq!(cmd(&mut c, &["LPUSH", "a", "x"]), "+QUEUED\r\n");
    assert_eq!(sim.get(0, b"a"), None);
    assert_eq!(
        cmd(&mut c, &["EXEC"]),
        "*3\r\n+OK\r\n:2\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    assert_eq!(sim.get(0, b"a"), Some(b"2".to_vec()));
    assert_eq!(cmd(&mut c, &["EXEC"]), "-ERR EXEC without MULTI\r\n");
    assert_eq!(cmd(&mut c, &["DISCARD"]), "-ERR DISCARD without MULTI\r\n");
}

#[test]
fn select_inside_multi_applies_to_later_commands() {
    let (sim, _, _, mut c) = connected(1);
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["SELECT", "5"]);
    cmd(&mut c, &["SET", "k", "v"]);
    assert_eq!(cmd(&mut c, &["EXEC"]), "*2\r\n+OK\r\n+OK\r\n");
    assert_eq!(sim.get(5, b"k"), Some(b"v".to_vec()));
}

#[test]
fn discard_drops_the_queue() {
    let (sim, _, _, mut c) = connected(1);
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["SET", "a", "1"]);
    assert_eq!(cmd(&mut c, &["DISCARD"]), "+OK\r\n");
    assert_eq!(sim.get(0, b"a"), None);
}

#[test]
fn queue_time_errors_abort_exec() {
    let (sim, _, _, mut c) = connected(1);
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["SET", "a", "1"]);
    assert_eq!(
        cmd(&mut c, &["BOGUS", "x"]),
        "-ERR unknown command 'BOGUS', with args beginning with: 'x' \r\n"
    );
    assert_eq!(
        cmd(&mut c, &["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(sim.get(0, b"a"), None);
    // Arity errors and nested MULTI abort too.
    cmd(&mut c, &["MULTI"]);
    assert_eq!(
        cmd(&mut c, &["GET"]),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert!(cmd(&mut c, &["EXEC"]).starts_with("-EXECABORT"));
    cmd(&mut c, &["MULTI"]);
    assert_eq!(
        cmd(&mut c, &["MULTI"]),
        "-ERR Command not allowed inside a transaction\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["WATCH", "a"]),
        "-ERR Command not allowed inside a transaction\r\n"
    );
    assert!(cmd(&mut c, &["EXEC"]).starts_with("-EXECABORT"));
}

#[test]
fn watch_detects_writes_by_others() {
    let (sim, _, _, mut c) = connected(1);
    let mut other = sim.connect().unwrap();
    cmd(&mut c, &["SET", "bal", "10"]);
    assert_eq!(cmd(&mut c, &["WATCH", "bal"]), "+OK\r\n");
    assert_eq!(cmd(&mut other, &["INCR", "bal"]), ":11\r\n");
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["SET", "bal", "0"]);
    assert_eq!(cmd(&mut c, &["EXEC"]), "*-1\r\n");
    assert_eq!(sim.get(0, b"bal"), Some(b"11".to_vec()));
    // The watch is gone after EXEC: the next transaction runs.
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["SET", "bal", "0"]);
    assert_eq!(cmd(&mut c, &["EXEC"]), "*1\r\n+OK\r\n");
}

#[test]
fn watch_in_another_db_or_other_key_does_not_interfere() {
    let (sim, _, _, mut c) = connected(1);
    let mut other = sim.connect().unwrap();
    cmd(&mut c, &["WATCH", "k"]);
    cmd(&mut other, &["SELECT", "1"]);
    cmd(&mut other, &["SET", "k", "v"]);
    cmd(&mut other, &["SELECT", "0"]);
    cmd(&mut other, &["SET", "j", "v"]);
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["GET", "k"]);
    assert_eq!(cmd(&mut c, &["EXEC"]), "*1\r\n$-1\r\n");
}

#[test]
fn unwatch_and_discard_forget_watches() {
    let (sim, _, _, mut c) = connected(1);
    let mut other = sim.connect().unwrap();
    cmd(&mut c, &["WATCH", "k"]);
    cmd(&mut other, &["SET", "k", "v"]);
    assert_eq!(cmd(&mut c, &["UNWATCH"]), "+OK\r\n");
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["PING"]);
    assert_eq!(cmd(&mut c, &["EXEC"]), "*1\r\n+PONG\r\n");
}

#[test]
fn watched_key_expiring_aborts_exec() {
    let (_, clock, _, mut c) = connected(1);
    cmd(&mut c, &["SET", "k", "v", "PX", "100"]);
    cmd(&mut c, &["WATCH", "k"]);
    clock.advance(Duration::from_millis(100));
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["SET", "x", "1"]);
    assert_eq!(cmd(&mut c, &["EXEC"]), "*-1\r\n");
    // A key that had already expired when watched is just a missing key.
    cmd(&mut c, &["SET", "g", "v", "PX", "10"]);
    clock.advance(Duration::from_millis(20));
    cmd(&mut c, &["WATCH", "g"]);
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["GET", "g"]);
    assert_eq!(cmd(&mut c, &["EXEC"]), "*1\r\n$-1\r\n");
}

#[test]
fn own_write_before_multi_dirties_the_watch() {
    let (_, _, _, mut c) = connected(1);
    cmd(&mut c, &["WATCH", "k"]);
    cmd(&mut c, &["SET", "k", "v"]);
    cmd(&mut c, &["MULTI"]);
    cmd(&mut c, &["GET", "k"]);
    assert_eq!(cmd(&mut c, &["EXEC"]), "*-1\r\n");
}
