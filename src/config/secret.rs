//! [`Secret`]: a password that never shows itself in `Debug`, `Display`, errors or logs.

use std::fmt;

/// A secret string (a password). `Debug` and `Display` print `***`; read it with [`Secret::expose`].
///
/// An empty secret means "no password": it lets a higher layer (e.g. `REDIS_PASSWORD=`) remove a
/// password set by a lower one, and resolves to `None`.
///
/// ```
/// use redis_keeper::config::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s} {s:?}"), "*** ***");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call it only where the value is sent to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True for the empty secret ("no password").
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Any YAML scalar reads as its text (`password: 1234` is "1234"); error messages from
        // the default visitor methods name only the node kind, never a value.
        String::deserialize(d).map(Self)
    }
}
