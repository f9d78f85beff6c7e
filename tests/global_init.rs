//! The process-wide Keeper set from code (`init_global_with`) before first use: its own test
//! binary, since the process-wide Keeper can be set once per process.
#![cfg(all(feature = "sim", any(feature = "tokio", feature = "smol")))]

use std::sync::Arc;

use redis::AsyncCommands;
use redis_keeper::sim::Sim;
use redis_keeper::{get_redis_client, global_keeper, init_global, init_global_with, Error};
use redis_keeper::{KeeperConfig, RedisDatabase};

#[test]
fn the_global_keeper_set_from_code_serves_get_redis_client_and_is_set_once() {
    let sim = Sim::new(1);
    let redis = sim.redis();
    let keeper = sim
        .keeper_builder(KeeperConfig::default(), Arc::new(redis.transport()))
        .build()
        .unwrap();
    let set = init_global_with(keeper).unwrap();
    assert_eq!(set.runtime_name(), "sim");
    assert!(std::ptr::eq(set, global_keeper().unwrap()));
    sim.block_on(async {
        let mut conn = get_redis_client(RedisDatabase::Cache).await.unwrap();
        let _: () = conn.set("k", "v").await.unwrap();
    });
    assert_eq!(redis.get(6, b"k").as_deref(), Some(&b"v"[..]));
    assert!(matches!(
        init_global(KeeperConfig::default()),
        Err(Error::GlobalAlreadySet)
    ));
    // Closed, it stays closed for the process.
    sim.block_on(global_keeper().unwrap().close());
    assert!(matches!(
        sim.block_on(get_redis_client("main")),
        Err(Error::Closed)
    ));
}
