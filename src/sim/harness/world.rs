//! Wiring a [`Keeper`](crate::Keeper) to a [`SimRedis`] inside one [`Sim`] world, in one call each.

#[cfg(any(feature = "tokio", feature = "smol"))]
use std::{collections::HashMap, sync::Arc};

use crate::sim::doubles::Sim;
use crate::sim::server::SimRedis;
#[cfg(any(feature = "tokio", feature = "smol"))]
use crate::{builder::KeeperBuilder, config::KeeperConfig, seams::Transport};

impl Sim {
    /// A simulated Redis living in this world: on its clock, with a fresh stream of its random
    /// draws, writing to its trace.
    ///
    /// ```
    /// let sim = redis_keeper::sim::Sim::new(7);
    /// let redis = sim.redis();
    /// assert!(redis.connect().is_ok());
    /// ```
    pub fn redis(&self) -> SimRedis {
        SimRedis::new(self.clock().clone(), self.rng(), self.trace().clone())
    }

    /// A [`KeeperBuilder`] for `config` whose every connection goes through `transport` (usually
    /// [`SimRedis::transport`]), on this world's [`runtime`](Sim::runtime), with an empty
    /// environment (so the process's `REDIS_*` variables cannot leak into a scenario) and this
    /// world's seed for its jitter. Call more builder methods before `build` as needed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use redis::AsyncCommands;
    /// use redis_keeper::{sim::Sim, KeeperConfig};
    ///
    /// let sim = Sim::new(7);
    /// let redis = sim.redis();
    /// let keeper = sim
    ///     .keeper_builder(KeeperConfig::default(), Arc::new(redis.transport()))
    ///     .build()
    ///     .unwrap();
    /// let n: i64 = sim.block_on(async {
    ///     let mut conn = keeper.main().await.unwrap();
    ///     conn.incr("visits", 1).await.unwrap()
    /// });
    /// assert_eq!(n, 1);
    /// ```
    #[cfg(any(feature = "tokio", feature = "smol"))]
    pub fn keeper_builder(
        &self,
        config: KeeperConfig,
        transport: Arc<dyn Transport>,
    ) -> KeeperBuilder {
        KeeperBuilder::new(config)
            .runtime(self.runtime(transport))
            .env(HashMap::<String, String>::new())
            .seed(self.seed())
    }
}
