//! Helpers shared by the integration tests on the simulator: a Keeper wired to a `SimRedis`.
// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

use std::sync::Arc;

use redis_keeper::sim::{Sim, SimRedis};
use redis_keeper::{Keeper, KeeperConfig};

/// A simulated world: the executor and clock, one server, and a Keeper on them.
pub struct World {
    pub sim: Sim,
    pub redis: SimRedis,
    pub keeper: Keeper,
}

/// A world from `seed` with a Keeper built from `config`.
pub fn world(seed: u64, config: KeeperConfig) -> World {
    let sim = Sim::new(seed);
    let redis = sim.redis();
    let keeper = sim
        .keeper_builder(config, Arc::new(redis.transport()))
        .build()
        .expect("valid config");
    World { sim, redis, keeper }
}
