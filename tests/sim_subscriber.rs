//! Subscribers on the simulator: RESP3 pushes, ordering, reconnects and resubscription, the
//! bounded buffer, the blocking twin and the lifecycle, in virtual time.
#![cfg(all(feature = "sim", any(feature = "tokio", feature = "smol")))]

mod sim_support;

use std::time::Duration;

use futures::StreamExt;
use redis::AsyncCommands;
use redis_keeper::sim::{Restart, Sim};
use redis_keeper::{Error, Keeper, KeeperConfig, Subscriber};
use sim_support::World;

fn world(seed: u64) -> World {
    let config = KeeperConfig::default().configure_all(|d| {
        d.max_connections(4)
            .shared_connections(1)
            .response_timeout(Duration::from_secs(1))
            .health_check_interval(Duration::from_secs(5))
    });
    sim_support::world(seed, config)
}

async fn publish(keeper: &Keeper, channel: &str, payload: &str) -> i64 {
    let mut conn = keeper.get("notifications").await.unwrap();
    conn.publish(channel, payload).await.unwrap()
}

/// Every message the subscriber has buffered now.
fn drain(sim: &Sim, sub: &mut Subscriber) -> Vec<(String, String)> {
    let mut out = Vec::new();
    sim.run_for(Duration::from_millis(10));
    while sub.backlog() > 0 {
        let msg = sim.block_on(sub.next()).expect("a message");
        out.push((
            msg.get_channel_name().to_owned(),
            msg.get_payload().unwrap(),
        ));
    }
    out
}

#[test]
fn a_thousand_messages_arrive_once_and_in_order() {
    let w = world(1);
    let mut sub = w
        .sim
        .block_on(w.keeper.subscriber("notifications"))
        .unwrap();
    w.sim.block_on(async {
        sub.subscribe("orders").await.unwrap();
        sub.psubscribe("audit.*").await.unwrap();
        for i in 0..1000 {
            assert_eq!(publish(&w.keeper, "orders", &format!("o-{i}")).await, 1);
        }
        assert_eq!(publish(&w.keeper, "audit.login", "alice").await, 1);
        assert_eq!(publish(&w.keeper, "elsewhere", "x").await, 0);
    });
    let got = drain(&w.sim, &mut sub);
    assert_eq!(got.len(), 1001);
    for (i, (channel, payload)) in got[..1000].iter().enumerate() {
        assert_eq!(
            (channel.as_str(), payload.as_str()),
            ("orders", format!("o-{i}").as_str())
        );
    }
    assert_eq!(got[1000], ("audit.login".to_owned(), "alice".to_owned()));
    let s = &w.keeper.stats().databases["notifications"];
    assert_eq!(
        (s.subscribers, s.messages_delivered, s.messages_dropped),
        (1, 1001, 0)
    );
    w.sim.block_on(sub.unsubscribe("orders")).unwrap();
    assert_eq!(w.sim.block_on(publish(&w.keeper, "orders", "late")), 0);
    assert_eq!(sub.channels(), Vec::<Vec<u8>>::new());
    assert_eq!(sub.patterns(), vec![b"audit.*".to_vec()]);
}

#[test]
fn a_subscriber_survives_a_killed_connection_and_a_restart_and_resubscribes_once_each() {
    let w = world(2);
    let mut sub = w
        .sim
        .block_on(w.keeper.subscriber("notifications"))
        .unwrap();
    w.sim.block_on(async {
        sub.subscribe(&["orders", "payments"]).await.unwrap();
        sub.psubscribe("audit.*").await.unwrap();
    });
    w.redis.kill_all();
    w.sim.run_for(Duration::from_secs(1));
    assert_eq!(
        sub.resubscriptions(),
        1,
        "one reconnect, one resubscription"
    );
    w.sim.block_on(async {
        assert_eq!(publish(&w.keeper, "orders", "after-kill").await, 1);
        assert_eq!(publish(&w.keeper, "audit.x", "p").await, 1);
    });
    assert_eq!(drain(&w.sim, &mut sub).len(), 2);
    // A restart: down for 3 s (connects refused: the retry schedule waits), then 4 s LOADING
    // (SUBSCRIBE works while loading).
    w.redis.restart(Restart {
        down: Duration::from_secs(3),
        loading: Duration::from_secs(4),
    });
    w.sim.run_for(Duration::from_secs(20));
    assert_eq!(sub.resubscriptions(), 2);
    w.sim.run_for(Duration::from_secs(20));
    w.sim.block_on(async {
        assert_eq!(publish(&w.keeper, "payments", "after-restart").await, 1);
    });
    assert_eq!(
        drain(&w.sim, &mut sub),
        vec![("payments".to_owned(), "after-restart".to_owned())]
    );
    assert_eq!(sub.resubscriptions(), 2, "no reconnect without a loss");
    let s = &w.keeper.stats().databases["notifications"];
    assert_eq!(s.resubscriptions, 2);
}

#[test]
fn a_frozen_subscriber_connection_is_noticed_by_its_ping_and_replaced() {
    let w = world(3);
    let mut sub = w
        .sim
        .block_on(w.keeper.subscriber("notifications"))
        .unwrap();
    w.sim.block_on(sub.subscribe("orders")).unwrap();
    // The server stops answering this connection (and every other) for 8 s: the idle PING
    // (every 5 s) times out after 1 s, the connection is closed, and a new one takes over.
    w.redis.stall(Duration::from_secs(8));
    w.sim.run_for(Duration::from_secs(20));
    assert!(sub.resubscriptions() >= 1, "{}", sub.resubscriptions());
    w.sim.block_on(async {
        assert_eq!(publish(&w.keeper, "orders", "fresh").await, 1);
    });
    assert_eq!(
        drain(&w.sim, &mut sub),
        vec![("orders".to_owned(), "fresh".to_owned())]
    );
}

#[test]
fn a_full_buffer_drops_and_counts_never_blocking_the_connection() {
    let w = world(4);
    let mut sub = w
        .sim
        .block_on(w.keeper.subscriber_with_buffer("notifications", 3))
        .unwrap();
    w.sim.block_on(async {
        sub.subscribe("orders").await.unwrap();
        for i in 0..5 {
            publish(&w.keeper, "orders", &format!("o-{i}")).await;
        }
    });
    let got = drain(&w.sim, &mut sub);
    assert_eq!(
        got.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>(),
        ["o-0", "o-1", "o-2"]
    );
    assert_eq!(sub.dropped(), 2);
    assert_eq!(
        w.keeper.stats().databases["notifications"].messages_dropped,
        2
    );
    // The connection kept serving: the next message gets through.
    w.sim.block_on(publish(&w.keeper, "orders", "o-5"));
    assert_eq!(drain(&w.sim, &mut sub).len(), 1);
}

#[test]
fn subscribe_on_a_command_connection_names_the_subscriber() {
    let w = world(5);
    w.sim.block_on(async {
        let mut shared = w.keeper.get("main").await.unwrap();
        let mut exclusive = w.keeper.get_exclusive("main").await.unwrap();
        for cmd in ["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"] {
            for conn in [&mut shared, &mut exclusive] {
                let e = redis::cmd(cmd)
                    .arg("x")
                    .query_async::<()>(conn)
                    .await
                    .unwrap_err();
                let e = Error::from(e);
                assert!(matches!(e, Error::NeedsSubscriber { .. }), "{e:?}");
                assert!(e.to_string().contains("subscriber"), "{e}");
            }
        }
    });
}

#[test]
fn closing_the_keeper_ends_the_stream_and_dropping_a_subscriber_closes_its_connection() {
    let w = world(6);
    let mut sub = w
        .sim
        .block_on(w.keeper.subscriber("notifications"))
        .unwrap();
    w.sim.block_on(sub.subscribe("orders")).unwrap();
    assert_eq!(w.redis.connected_clients(), 1);
    drop(sub);
    w.sim.run_for(Duration::from_millis(10));
    assert_eq!(
        w.redis.connected_clients(),
        0,
        "dropped: its connection closed"
    );
    assert_eq!(w.keeper.stats().databases["notifications"].subscribers, 0);

    let mut sub = w
        .sim
        .block_on(w.keeper.subscriber("notifications"))
        .unwrap();
    w.sim.block_on(sub.subscribe("orders")).unwrap();
    w.sim.block_on(publish(&w.keeper, "orders", "last"));
    w.sim.run_for(Duration::from_millis(10));
    w.sim.block_on(w.keeper.close());
    let last = w
        .sim
        .block_on(sub.next())
        .expect("the buffered message survives the close");
    assert_eq!(last.get_payload::<String>().unwrap(), "last");
    assert!(w.sim.block_on(sub.next()).is_none(), "then the stream ends");
    assert!(matches!(
        w.sim.block_on(sub.subscribe("more")),
        Err(Error::Closed)
    ));
}

#[test]
fn the_blocking_subscriber_waits_for_a_message_or_its_timeout() {
    let w = world(7);
    let keeper = w.keeper.clone();
    let got = w.sim.run_blocking(move || {
        let mut sub = keeper.subscriber_blocking("notifications").unwrap();
        sub.subscribe("orders").unwrap();
        let none = sub.next_message(Duration::from_secs(2)).unwrap();
        let mut conn = keeper.get_blocking_shared("notifications").unwrap();
        let _: i64 = redis::cmd("PUBLISH")
            .arg("orders")
            .arg("o-1")
            .query(&mut conn)
            .unwrap();
        let some = sub.next_message(Duration::from_secs(2)).unwrap();
        (
            none.is_none(),
            some.map(|m| m.get_payload::<String>().unwrap()),
        )
    });
    assert_eq!(got, (true, Some("o-1".to_owned())));
}
