//! The shared handle's refusals, the session tracking of exclusive handles, and the name filter.

use super::*;

#[test]
fn shared_refuses_state_changing_commands_and_allows_the_rest() {
    for c in ["SELECT", "watch", "MULTI", "BLPOP", "AUTH"] {
        let cmd = redis::cmd(c);
        let err = refuse_on_shared(CommandKind::Single(&cmd)).unwrap_err();
        assert!(matches!(err, Error::NeedsExclusive { .. }), "{c}: {err}");
        assert!(err.to_string().contains("get_exclusive"), "{c}: {err}");
    }
    for c in ["SUBSCRIBE", "psubscribe", "SSUBSCRIBE"] {
        let cmd = redis::cmd(c);
        for err in [
            refuse_on_shared(CommandKind::Single(&cmd)).unwrap_err(),
            refuse_subscribe(CommandKind::Single(&cmd)).unwrap_err(),
        ] {
            assert!(matches!(err, Error::NeedsSubscriber { .. }), "{c}: {err}");
            assert!(err.to_string().contains("subscriber"), "{c}: {err}");
        }
    }
    assert!(refuse_subscribe(CommandKind::Single(&redis::cmd("BLPOP"))).is_ok());
    let mut setname = redis::cmd("CLIENT");
    setname.arg("SETNAME").arg("x");
    assert!(refuse_on_shared(CommandKind::Single(&setname)).is_err());
    let mut id = redis::cmd("CLIENT");
    id.arg("ID");
    assert!(refuse_on_shared(CommandKind::Single(&id)).is_ok());
    let mut xread = redis::cmd("XREAD");
    xread.arg("BLOCK").arg(0).arg("STREAMS").arg("s").arg("$");
    assert!(refuse_on_shared(CommandKind::Single(&xread)).is_err());
    let mut get = redis::cmd("GET");
    get.arg("k");
    assert!(refuse_on_shared(CommandKind::Single(&get)).is_ok());
    let mut p = redis::pipe();
    p.set("a", 1).cmd("SELECT").arg(2);
    assert!(refuse_on_shared(CommandKind::Pipeline(&p, 0, 2)).is_err());
}

#[test]
fn every_refused_name_is_within_the_length_prefilter() {
    let names = [
        "SELECT",
        "WATCH",
        "UNWATCH",
        "MULTI",
        "EXEC",
        "DISCARD",
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
        "UNSUBSCRIBE",
        "PUNSUBSCRIBE",
        "SUNSUBSCRIBE",
        "MONITOR",
        "BLPOP",
        "BRPOP",
        "BRPOPLPUSH",
        "BLMOVE",
        "BLMPOP",
        "BZPOPMIN",
        "BZPOPMAX",
        "BZMPOP",
        "WAIT",
        "WAITAOF",
        "AUTH",
        "HELLO",
        "RESET",
        "QUIT",
        "READONLY",
        "READWRITE",
        "ASKING",
    ];
    for name in names {
        assert!(REFUSED_LEN.contains(&name.len()), "{name}");
        let cmd = redis::cmd(&name.to_lowercase());
        assert!(
            refuse_on_shared(CommandKind::Single(&cmd)).is_err(),
            "{name}"
        );
    }
    let mut setname = redis::cmd("client");
    setname.arg("setname").arg("x");
    let mut xread = redis::cmd("XREADGROUP");
    xread.arg("GROUP").arg("g").arg("c").arg("BLOCK").arg(0);
    for cmd in [setname, xread] {
        assert!(refuse_on_shared(CommandKind::Single(&cmd)).is_err());
    }
    for allowed in [
        "GET",
        "SET",
        "DEL",
        "INCR",
        "EXPIRE",
        "ZRANGEBYSCORE",
        "CLIENTS",
    ] {
        let cmd = redis::cmd(allowed);
        assert!(
            refuse_on_shared(CommandKind::Single(&cmd)).is_ok(),
            "{allowed}"
        );
    }
}

#[test]
fn session_tracks_state_that_forbids_reuse() {
    let mut s = Session::default();
    assert!(s.is_clean());
    s.observe(b"watch", Some(b"k"));
    assert!(!s.is_clean());
    s.observe(b"EXEC", None);
    assert!(s.is_clean());
    s.observe(b"client", Some(b"id"));
    s.observe(b"CLIENT", Some(b"INFO"));
    assert!(
        s.is_clean(),
        "CLIENT ID and INFO leave the connection as it was"
    );
    s.observe(b"CLIENT", Some(b"setname"));
    assert!(!s.is_clean());
    let mut s = Session::default();
    s.observe(b"SELECT", Some(b"3"));
    assert!(!s.is_clean());
}

#[test]
fn an_atomic_pipeline_ends_the_watch_it_follows() {
    let mut s = Session::default();
    observe_commands(&mut s, CommandKind::Single(redis::cmd("WATCH").arg("k")));
    assert!(!s.is_clean(), "watching");
    let mut tx = redis::pipe();
    tx.atomic().set("k", 1).incr("n", 1);
    observe_commands(&mut s, CommandKind::Pipeline(&tx, 3, 1));
    assert!(s.is_clean(), "the atomic pipeline's EXEC ended the WATCH");
    let mut plain = redis::pipe();
    plain.cmd("WATCH").arg("k").set("k", 2);
    observe_commands(&mut s, CommandKind::Pipeline(&plain, 0, 2));
    assert!(!s.is_clean(), "a plain pipeline's WATCH stays open");
}
