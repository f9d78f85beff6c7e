//! `Keeper::new` picks tokio inside a tokio runtime and smol elsewhere; the builder can choose.
#![cfg(all(feature = "tokio", feature = "smol"))]

use std::collections::HashMap;

use redis_keeper::seams::Runtime;
use redis_keeper::{Keeper, KeeperConfig};

fn config() -> KeeperConfig {
    KeeperConfig::default()
}

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

#[test]
fn picks_tokio_inside_a_tokio_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keeper = rt.block_on(async { Keeper::builder(config()).env(no_env()).build().unwrap() });
    assert_eq!(keeper.runtime_name(), "tokio");
}

#[test]
fn picks_smol_outside_any_runtime_and_the_builder_can_choose() {
    let keeper = Keeper::builder(config()).env(no_env()).build().unwrap();
    assert_eq!(keeper.runtime_name(), "smol");
    let keeper = Keeper::builder(config())
        .env(no_env())
        .runtime(Runtime::smol())
        .build()
        .unwrap();
    assert_eq!(keeper.runtime_name(), "smol");
    assert_eq!(keeper.names().count(), 16);
}
