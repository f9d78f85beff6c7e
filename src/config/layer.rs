//! One layer of settings where every key is optional ([`Partial`]), and how layers stack.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Jitter, Origin, Secret};

/// Longest accepted duration: one year.
pub(crate) const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Checks a number of seconds: finite, ≥ 0, ≤ one year.
pub(crate) fn seconds(value: f64) -> Result<Duration, String> {
    if !value.is_finite() || value < 0.0 {
        Err("expected a number of seconds ≥ 0".to_owned())
    } else if value > MAX_SECONDS {
        Err("more than one year".to_owned())
    } else {
        Ok(Duration::from_secs_f64(value))
    }
}

/// A value type a setting can hold: parsed from text (environment) and shown in errors.
pub(crate) trait Setting: Clone {
    fn parse_text(text: &str) -> Result<Self, String>;
    fn show(&self) -> String;
}

impl Setting for String {
    fn parse_text(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
    fn show(&self) -> String {
        self.escape_debug().to_string()
    }
}

macro_rules! int_setting {
    ($($t:ty),*) => {$(
        impl Setting for $t {
            fn parse_text(text: &str) -> Result<Self, String> {
                text.trim()
                    .parse()
                    .map_err(|_| format!("expected an integer in 0..={}", <$t>::MAX))
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
int_setting!(u8, u16, u32);

impl Setting for bool {
    fn parse_text(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".to_owned()),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Setting for Duration {
    fn parse_text(text: &str) -> Result<Self, String> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| "expected a number of seconds".to_owned())?;
        seconds(value)
    }
    fn show(&self) -> String {
        format!("{}s", self.as_secs_f64())
    }
}

impl Setting for Secret {
    fn parse_text(text: &str) -> Result<Self, String> {
        Ok(Secret::new(text))
    }
    fn show(&self) -> String {
        "***".to_owned()
    }
}

impl Setting for Jitter {
    fn parse_text(text: &str) -> Result<Self, String> {
        text.parse()
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

macro_rules! partial {
    ($($key:ident : $ty:ty,)*) => {
        /// Settings of one layer; `None` means "not set here".
        #[derive(Debug, Clone, Default)]
        pub(crate) struct Partial {
            $(pub(crate) $key: Option<$ty>,)*
        }

        /// Every canonical key a layer can set.
        pub(crate) const KEYS: &[&str] = &[$(stringify!($key)),*];

        impl Partial {
            /// Parses `text` into the canonical `key`; `None` if no such key.
            pub(crate) fn set_text(&mut self, key: &str, text: &str) -> Option<Result<(), String>> {
                match key {
                    $(stringify!($key) => Some(
                        <$ty as Setting>::parse_text(text).map(|v| self.$key = Some(v))
                    ),)*
                    _ => None,
                }
            }

            /// The shown value of `key` (`***` for secrets), if set.
            pub(crate) fn show(&self, key: &str) -> Option<String> {
                match key {
                    $(stringify!($key) => self.$key.as_ref().map(Setting::show),)*
                    _ => None,
                }
            }

            /// Copies every key `top` sets, recording where each came from.
            pub(crate) fn overlay(&mut self, top: &Layer, origins: &mut Origins) {
                $(if let Some(v) = &top.values.$key {
                    self.$key = Some(v.clone());
                    origins.0.insert(stringify!($key), top.origin_of(stringify!($key)));
                })*
            }
        }
    };
}

partial! {
    host: String,
    port: u16,
    username: String,
    password: Secret,
    db: u8,
    description: String,
    max_connections: u32,
    shared_connections: u32,
    socket_connect_timeout: Duration,
    socket_timeout: Duration,
    socket_keepalive: bool,
    keepalive_idle: Duration,
    keepalive_interval: Duration,
    keepalive_probes: u32,
    tcp_nodelay: bool,
    health_check_interval: Duration,
    check_on_checkout_after: Duration,
    retry_multiplier: Duration,
    retry_min: Duration,
    retry_max: Duration,
    retry_attempts: u32,
    retry_jitter: Jitter,
    retry_on_timeout: bool,
    breaker_failure_threshold: u32,
    breaker_open_seconds: Duration,
    breaker_loss_window: Duration,
    loading_poll_interval: Duration,
    loading_timeout: Duration,
    idle_timeout: Duration,
    idle_sweep_interval: Duration,
    min_idle: u32,
    max_lifetime: Duration,
    pool_wait_timeout: Duration,
    decode_responses: bool,
    log_commands: bool,
}

/// The canonical keys a YAML/env key name stands for (aliases included); `None` if unknown.
pub(crate) fn canonical_keys(key: &str) -> Option<Vec<&'static str>> {
    match key {
        "timeout" | "timeout_seconds" => Some(vec!["socket_timeout"]),
        "max_retries" => Some(vec!["retry_attempts"]),
        "retry_delay" => Some(vec!["retry_multiplier", "retry_min"]),
        _ => KEYS.iter().find(|k| **k == key).map(|k| vec![*k]),
    }
}

/// A [`Partial`] plus where its values came from.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) values: Partial,
    origins: BTreeMap<&'static str, Origin>,
    fallback: Origin,
}

impl Layer {
    /// An empty layer whose values come from `fallback` unless recorded otherwise.
    pub(crate) fn new(fallback: Origin) -> Self {
        Self {
            values: Partial::default(),
            origins: BTreeMap::new(),
            fallback,
        }
    }

    /// Records that `key` came from `origin`.
    pub(crate) fn record(&mut self, key: &'static str, origin: Origin) {
        self.origins.insert(key, origin);
    }

    /// Where `key` came from.
    pub(crate) fn origin_of(&self, key: &str) -> Origin {
        self.origins
            .get(key)
            .cloned()
            .unwrap_or_else(|| self.fallback.clone())
    }
}

/// Where each key of a merged [`Partial`] came from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins(pub(crate) BTreeMap<&'static str, Origin>);

impl Origins {
    pub(crate) fn get(&self, key: &str) -> Origin {
        self.0.get(key).cloned().unwrap_or(Origin::Default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_parsing() {
        let mut p = Partial::default();
        assert!(p.set_text("max_connections", "50").unwrap().is_ok());
        assert_eq!(p.max_connections, Some(50));
        assert!(p.set_text("socket_timeout", "1.5").unwrap().is_ok());
        assert_eq!(p.socket_timeout, Some(Duration::from_millis(1500)));
        assert!(p.set_text("socket_timeout", "-1").unwrap().is_err());
        assert!(p.set_text("socket_timeout", "NaN").unwrap().is_err());
        assert!(p.set_text("socket_timeout", "1e12").unwrap().is_err());
        assert!(p.set_text("db", "16").unwrap().is_ok()); // range-checked at resolution
        assert!(p.set_text("db", "-1").unwrap().is_err());
        assert!(p.set_text("nope", "1").is_none());
        p.set_text("password", "pw").unwrap().unwrap();
        assert_eq!(p.show("password").unwrap(), "***");
        assert_eq!(
            canonical_keys("retry_delay").unwrap(),
            ["retry_multiplier", "retry_min"]
        );
    }
}
