//! Turns resolved [`DatabaseSettings`] into policy configurations and redis-rs connection info.

use crate::config::DatabaseSettings;
use crate::policy::{
    BreakerConfig, HealthConfig, IdleConfig, LossConfig, ReadinessConfig, RetryConfig,
};

/// The policy configurations of one database.
pub(super) struct PolicySettings {
    pub(super) breaker: BreakerConfig,
    pub(super) loss: LossConfig,
    pub(super) retry: RetryConfig,
    pub(super) readiness: ReadinessConfig,
    pub(super) idle: IdleConfig,
    pub(super) health: HealthConfig,
}

impl From<&DatabaseSettings> for PolicySettings {
    fn from(s: &DatabaseSettings) -> Self {
        Self {
            breaker: BreakerConfig {
                failure_threshold: s.breaker.failure_threshold,
                open_for: s.breaker.open_for,
            },
            loss: LossConfig {
                window: s.breaker.loss_window,
            },
            retry: RetryConfig {
                multiplier: s.retry.multiplier,
                min: s.retry.min,
                max: s.retry.max,
                max_attempts: s.retry.attempts,
                jitter: s.retry.jitter,
                retry_on_timeout: s.retry.retry_on_timeout,
            },
            readiness: ReadinessConfig {
                poll_interval: s.readiness.loading_poll_interval,
                timeout: s.readiness.loading_timeout,
                probe_timeout: s.response_timeout,
            },
            idle: IdleConfig {
                idle_timeout: s.idle.idle_timeout,
                sweep_interval: s.idle.sweep_interval,
                min_idle: s.idle.min_idle as usize,
                max_lifetime: s.idle.max_lifetime,
            },
            health: HealthConfig {
                interval: s.health_check_interval,
                check_on_checkout_after: Some(s.check_on_checkout_after),
            },
        }
    }
}

/// The redis-rs handshake parameters: db number and credentials, RESP2.
pub(super) fn connection_info(s: &DatabaseSettings) -> redis::RedisConnectionInfo {
    let mut info = redis::RedisConnectionInfo::default().set_db(i64::from(s.db));
    if let Some(user) = &s.username {
        info = info.set_username(user);
    }
    if let Some(password) = &s.password {
        info = info.set_password(password.expose());
    }
    info
}
