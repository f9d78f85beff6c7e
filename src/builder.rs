//! `KeeperBuilder`: choose the runtime, a service registry, a clock, the environment or a seed.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{EnvSource, KeeperConfig, ProcessEnv, ServiceRegistry};
use crate::database::{Database, SentinelBackends};
use crate::error::Error;
use crate::keeper::Keeper;
use crate::rng::Rng;
use crate::seams::{Clock, Runtime};

/// Builds a [`Keeper`] with non-default seams.
///
/// ```no_run
/// # fn demo() -> Result<(), redis_keeper::Error> {
/// use redis_keeper::{seams::Runtime, Keeper, KeeperConfig};
/// let keeper = Keeper::builder(KeeperConfig::default())
///     .runtime(Runtime::smol())
///     .build()?;
/// assert_eq!(keeper.runtime_name(), "smol");
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct KeeperBuilder {
    config: KeeperConfig,
    runtime: Option<Runtime>,
    clock: Option<Arc<dyn Clock>>,
    registry: Option<Arc<dyn ServiceRegistry>>,
    env: Option<Box<dyn EnvSource>>,
    seed: Option<u64>,
    background: bool,
}

impl KeeperBuilder {
    /// A builder for `config` with the detected runtime, the process environment, no registry.
    pub fn new(config: KeeperConfig) -> Self {
        Self {
            config,
            runtime: None,
            clock: None,
            registry: None,
            env: None,
            seed: None,
            background: true,
        }
    }

    /// Runs on `runtime` (its clock, spawner and transport) instead of the detected one.
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Uses `clock` instead of the runtime's own.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Takes host, port and credentials from a service registry (precedence above the
    /// built-in defaults, below YAML, environment and code).
    pub fn registry(mut self, registry: Arc<dyn ServiceRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Reads environment overrides from `env` instead of the process environment.
    pub fn env(mut self, env: impl EnvSource + 'static) -> Self {
        self.env = Some(Box::new(env));
        self
    }

    /// Seeds the retry jitter (for reproducible runs); by default it is seeded from entropy.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Whether to run the background tasks: the idle sweep and health checks, and the watcher
    /// of each Sentinel master (without it a Sentinel database follows a failover only
    /// through `ROLE` checks and `READONLY` replies: no hold, no events, no poll). Default:
    /// true.
    pub fn background_tasks(mut self, on: bool) -> Self {
        self.background = on;
        self
    }

    /// Resolves the configuration and builds the Keeper. No connection is opened yet.
    pub fn build(self) -> Result<Keeper, Error> {
        let env: &dyn EnvSource = match &self.env {
            Some(env) => env.as_ref(),
            None => &ProcessEnv,
        };
        let resolved = self.config.resolve(self.registry.as_deref(), env)?;
        let mut runtime = self.runtime.unwrap_or_else(Runtime::detect);
        if let Some(clock) = self.clock {
            runtime = runtime.with_clock(clock);
        }
        if let Some(cluster) = resolved.databases().find(|d| d.cluster.is_some()) {
            let reason = if !cfg!(feature = "cluster") {
                Some("this build does not serve (the `cluster` feature is off)".to_owned())
            } else if !matches!(runtime.name(), "tokio" | "smol") {
                Some(format!(
                    "the `{}` runtime cannot serve: redis-rs's cluster client dials its own \
                     sockets on tokio or smol",
                    runtime.name()
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(Error::ClusterNotServed {
                    db: cluster.name.clone(),
                    reason,
                });
            }
        }
        let mut rng = match self.seed {
            Some(seed) => Rng::new(seed),
            None => Rng::from_entropy(),
        };
        let mut sentinels = SentinelBackends::default();
        let databases: BTreeMap<String, Arc<Database>> = resolved
            .databases()
            .map(|settings| {
                (
                    settings.name.clone(),
                    Database::new(
                        settings.clone(),
                        runtime.clone(),
                        rng.fork(),
                        resolved.log_level,
                        &mut sentinels,
                    ),
                )
            })
            .collect();
        tracing::info!(
            runtime = runtime.name(),
            databases = databases.len(),
            source = resolved.source.as_deref().unwrap_or("defaults"),
            "keeper ready"
        );
        Ok(Keeper::from_parts(databases, &runtime, self.background))
    }
}

impl Keeper {
    /// Builds a Keeper from `config` on the runtime it is called from (tokio inside a tokio
    /// runtime, else smol), with the process environment and no service registry.
    pub fn new(config: KeeperConfig) -> Result<Keeper, Error> {
        KeeperBuilder::new(config).build()
    }

    /// A builder to choose the runtime, a service registry, a clock or a seed.
    pub fn builder(config: KeeperConfig) -> KeeperBuilder {
        KeeperBuilder::new(config)
    }
}

impl std::fmt::Debug for KeeperBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeeperBuilder")
            .field("runtime", &self.runtime.as_ref().map(Runtime::name))
            .field("seed", &self.seed)
            .field("background", &self.background)
            .finish_non_exhaustive()
    }
}
