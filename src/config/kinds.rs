//! The kinds of value a configuration key holds: how each reads from YAML and from text, what
//! it accepts, and how it shows in errors and in the README.
//!
//! A kind's [`Kind::check`] is applied to every layer at resolution (code and environment
//! values too); YAML values are also checked while they are read, so those errors carry the
//! value's line and column.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};
use serde::Deserialize;

use super::Secret;
use crate::policy::Jitter;

/// Longest accepted duration: one year.
pub(crate) const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// What a configuration key holds.
pub(crate) trait Kind {
    /// The value, as the layers store it.
    type Value: Clone + PartialEq + fmt::Debug + 'static;
    /// Whether the value is a secret (never shown, not even in a parse error).
    const SECRET: bool = false;
    /// Reads a YAML value of `key` (type only; [`read_checked`] adds the check).
    fn from_yaml<'de, D: Deserializer<'de>>(
        d: D,
        key: &'static str,
    ) -> Result<Self::Value, D::Error>;
    /// Parses the text form (environment variables); ranges are left to [`Kind::check`].
    fn from_text(text: &str) -> Result<Self::Value, String>;
    /// Whether the value is acceptable; the reason if not.
    fn check(_value: &Self::Value) -> Result<(), String> {
        Ok(())
    }
    /// The value as errors show it.
    fn show(value: &Self::Value) -> String;
    /// The value as the README's key table shows it.
    #[cfg_attr(not(test), allow(dead_code))]
    fn document(value: &Self::Value) -> String {
        format!("`{}`", Self::show(value))
    }
}

/// Reads `key`'s YAML value and checks it, failing inside the value's own deserialization so
/// serde_yaml marks the error with the value's line, column and key path. `null` (or `~`)
/// means "not set here".
pub(crate) struct Read<K>(pub(crate) &'static str, pub(crate) PhantomData<K>);

impl<'de, K: Kind> DeserializeSeed<'de> for Read<K> {
    type Value = Option<K::Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<K::Value>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, K: Kind> Visitor<'de> for Read<K> {
    type Value = Option<K::Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a value for {}", self.0)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let value = K::from_yaml(d, self.0)?;
        K::check(&value).map_err(|why| {
            de::Error::custom(format!("invalid {} {}: {why}", self.0, K::show(&value)))
        })?;
        Ok(Some(value))
    }
}

/// [`Read`] for kind `K`.
pub(crate) fn read_checked<K: Kind>(key: &'static str) -> Read<K> {
    Read(key, PhantomData)
}

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

/// Reads a YAML number of seconds (integer or float).
struct SecondsVisitor;

impl Visitor<'_> for SecondsVisitor {
    type Value = Duration;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of seconds")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        self.visit_f64(v as f64)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        self.visit_f64(v as f64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        seconds(v).map_err(|why| E::custom(format!("invalid duration {v:?}: {why}")))
    }
}

/// Reads a YAML integer in `min..=max`.
struct IntIn {
    what: &'static str,
    min: i64,
    max: i64,
}

impl IntIn {
    fn out_of_range<E: de::Error>(&self, v: impl fmt::Display) -> E {
        E::custom(format!(
            "invalid {} {v}: expected {}..={}",
            self.what, self.min, self.max
        ))
    }
}

impl Visitor<'_> for IntIn {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer in {}..={}", self.min, self.max)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        if (self.min..=self.max).contains(&v) {
            Ok(v)
        } else {
            Err(self.out_of_range(v))
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => Err(self.out_of_range(v)),
        }
    }
}

/// Reads a YAML integer that fits `T`.
fn integer<'de, T, D>(d: D, what: &'static str) -> Result<T, D::Error>
where
    T: TryFrom<i64> + Into<i64> + Bounded,
    D: Deserializer<'de>,
{
    let v = d.deserialize_i64(IntIn {
        what,
        min: T::MIN.into(),
        max: T::MAX.into(),
    })?;
    T::try_from(v).map_err(|_| de::Error::custom(format!("invalid {what} {v}")))
}

/// Parses the text form of an integer that fits `T`.
fn integer_text<T: std::str::FromStr + Bounded + fmt::Display>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("expected an integer in 0..={}", T::MAX))
}

/// The bounds of an integer type.
trait Bounded: Sized {
    const MIN: Self;
    const MAX: Self;
}

macro_rules! bounded {
    ($($t:ty),*) => {$(
        impl Bounded for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
        }
    )*};
}
bounded!(u8, u16, u32);

/// Reads a YAML string and parses it.
struct Parsed<T> {
    what: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Visitor<'_> for Parsed<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {}", self.what)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(|why| {
            E::custom(format!(
                "invalid {} `{}`: {why}",
                self.what,
                v.escape_debug()
            ))
        })
    }
}

/// Free text.
pub(crate) struct Text;

impl Kind for Text {
    type Value = String;
    fn from_yaml<'de, D: Deserializer<'de>>(d: D, _: &'static str) -> Result<String, D::Error> {
        String::deserialize(d)
    }
    fn from_text(text: &str) -> Result<String, String> {
        Ok(text.to_owned())
    }
    fn show(value: &String) -> String {
        value.escape_debug().to_string()
    }
}

/// A host name or address, not a URL.
pub(crate) struct Host;

impl Kind for Host {
    type Value = String;
    fn from_yaml<'de, D: Deserializer<'de>>(d: D, key: &'static str) -> Result<String, D::Error> {
        Text::from_yaml(d, key)
    }
    fn from_text(text: &str) -> Result<String, String> {
        Text::from_text(text)
    }
    fn check(host: &String) -> Result<(), String> {
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c == '/' || c == '@')
        {
            Err("expected a host name or address, not a URL (set `password` separately)".to_owned())
        } else {
            Ok(())
        }
    }
    /// A URL here may carry credentials (`redis://:pw@host`): never echo them.
    fn show(host: &String) -> String {
        redact_userinfo(&host.escape_debug().to_string())
    }
}

/// `scheme://user:password@rest` → `scheme://***@rest` (and `user:pw@rest` → `***@rest`): the
/// part of a URL-like value that may hold credentials, hidden.
pub(crate) fn redact_userinfo(value: &str) -> String {
    let Some(at) = value.rfind('@') else {
        return value.to_owned();
    };
    let start = value.find("://").map_or(0, |i| i + 3).min(at);
    format!("{}***{}", &value[..start], &value[at..])
}

/// A password.
pub(crate) struct Password;

impl Kind for Password {
    type Value = Secret;
    const SECRET: bool = true;
    fn from_yaml<'de, D: Deserializer<'de>>(d: D, _: &'static str) -> Result<Secret, D::Error> {
        Secret::deserialize(d)
    }
    fn from_text(text: &str) -> Result<Secret, String> {
        Ok(Secret::new(text))
    }
    fn show(_: &Secret) -> String {
        "***".to_owned()
    }
}

/// A TCP port, `1..=65535`.
pub(crate) struct Port;

impl Kind for Port {
    type Value = u16;
    fn from_yaml<'de, D: Deserializer<'de>>(d: D, key: &'static str) -> Result<u16, D::Error> {
        integer(d, key)
    }
    fn from_text(text: &str) -> Result<u16, String> {
        integer_text(text)
    }
    fn check(port: &u16) -> Result<(), String> {
        match port {
            0 => Err("expected 1..=65535".to_owned()),
            _ => Ok(()),
        }
    }
    fn show(port: &u16) -> String {
        port.to_string()
    }
}

/// A logical database number, `0..=15`.
pub(crate) struct DbNumber;

impl Kind for DbNumber {
    type Value = u8;
    fn from_yaml<'de, D: Deserializer<'de>>(d: D, key: &'static str) -> Result<u8, D::Error> {
        integer(d, key)
    }
    fn from_text(text: &str) -> Result<u8, String> {
        integer_text(text)
    }
    fn check(db: &u8) -> Result<(), String> {
        match db {
            0..=15 => Ok(()),
            _ => Err("expected 0..=15".to_owned()),
        }
    }
    fn show(db: &u8) -> String {
        db.to_string()
    }
}

/// A number, ≥ 0.
pub(crate) struct Number;

impl Kind for Number {
    type Value = u32;
    fn from_yaml<'de, D: Deserializer<'de>>(d: D, key: &'static str) -> Result<u32, D::Error> {
        integer(d, key)
    }
    fn from_text(text: &str) -> Result<u32, String> {
        integer_text(text)
    }
    fn show(n: &u32) -> String {
        n.to_string()
    }
}

/// A count, ≥ 1.
pub(crate) struct Count;

impl Kind for Count {
    type Value = u32;
    fn from_yaml<'de, D: Deserializer<'de>>(d: D, key: &'static str) -> Result<u32, D::Error> {
        Number::from_yaml(d, key)
    }
    fn from_text(text: &str) -> Result<u32, String> {
        Number::from_text(text)
    }
    fn check(n: &u32) -> Result<(), String> {
        match n {
            0 => Err("must be at least 1".to_owned()),
            _ => Ok(()),
        }
    }
    fn show(n: &u32) -> String {
        n.to_string()
    }
}

/// On or off.
pub(crate) struct Flag;

impl Kind for Flag {
    type Value = bool;
    fn from_yaml<'de, D: Deserializer<'de>>(d: D, _: &'static str) -> Result<bool, D::Error> {
        bool::deserialize(d)
    }
    fn from_text(text: &str) -> Result<bool, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".to_owned()),
        }
    }
    fn show(flag: &bool) -> String {
        flag.to_string()
    }
}

/// A duration in seconds, `0` to one year.
pub(crate) struct Seconds;

impl Kind for Seconds {
    type Value = Duration;
    fn from_yaml<'de, D: Deserializer<'de>>(d: D, _: &'static str) -> Result<Duration, D::Error> {
        d.deserialize_any(SecondsVisitor)
    }
    fn from_text(text: &str) -> Result<Duration, String> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| "expected a number of seconds".to_owned())?;
        seconds(value)
    }
    fn check(d: &Duration) -> Result<(), String> {
        if d.as_secs_f64() > MAX_SECONDS {
            Err("more than one year".to_owned())
        } else {
            Ok(())
        }
    }
    fn show(d: &Duration) -> String {
        format!("{}s", d.as_secs_f64())
    }
    fn document(d: &Duration) -> String {
        format!("`{}`", d.as_secs_f64())
    }
}

/// A period: a duration greater than 0.
pub(crate) struct Period;

impl Kind for Period {
    type Value = Duration;
    fn from_yaml<'de, D: Deserializer<'de>>(d: D, key: &'static str) -> Result<Duration, D::Error> {
        Seconds::from_yaml(d, key)
    }
    fn from_text(text: &str) -> Result<Duration, String> {
        Seconds::from_text(text)
    }
    fn check(d: &Duration) -> Result<(), String> {
        Seconds::check(d)?;
        if d.is_zero() {
            Err("must be greater than 0".to_owned())
        } else {
            Ok(())
        }
    }
    fn show(d: &Duration) -> String {
        Seconds::show(d)
    }
    fn document(d: &Duration) -> String {
        Seconds::document(d)
    }
}

/// A duration where `0` means no limit.
pub(crate) struct Limit;

impl Kind for Limit {
    type Value = Option<Duration>;
    fn from_yaml<'de, D: Deserializer<'de>>(
        d: D,
        key: &'static str,
    ) -> Result<Option<Duration>, D::Error> {
        Seconds::from_yaml(d, key).map(|d| (!d.is_zero()).then_some(d))
    }
    fn from_text(text: &str) -> Result<Option<Duration>, String> {
        Seconds::from_text(text).map(|d| (!d.is_zero()).then_some(d))
    }
    fn check(d: &Option<Duration>) -> Result<(), String> {
        d.as_ref().map_or(Ok(()), Seconds::check)
    }
    fn show(d: &Option<Duration>) -> String {
        d.as_ref().map_or_else(|| "none".to_owned(), Seconds::show)
    }
    fn document(d: &Option<Duration>) -> String {
        d.as_ref()
            .map_or_else(|| "no limit".to_owned(), Seconds::document)
    }
}

/// A retry jitter name (`none` or `full`).
pub(crate) struct JitterName;

impl Kind for JitterName {
    type Value = Jitter;
    fn from_yaml<'de, D: Deserializer<'de>>(d: D, key: &'static str) -> Result<Jitter, D::Error> {
        d.deserialize_str(Parsed {
            what: key,
            parse: str::parse::<Jitter>,
        })
    }
    fn from_text(text: &str) -> Result<Jitter, String> {
        text.parse()
    }
    fn show(j: &Jitter) -> String {
        j.to_string()
    }
}

/// Reads a YAML string and parses it with `parse` (for values outside the key table, such as
/// `log_level`).
pub(crate) fn parsed<'de, T, D: Deserializer<'de>>(
    d: D,
    what: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    d.deserialize_str(Parsed { what, parse })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_parse_and_checks_apply() {
        assert_eq!(Count::from_text("50"), Ok(50));
        assert!(Count::check(&0).is_err());
        assert_eq!(Seconds::from_text("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["-1", "NaN", "1e12", "soon"] {
            assert!(Seconds::from_text(bad).is_err(), "{bad}");
        }
        assert_eq!(DbNumber::from_text("16"), Ok(16)); // range-checked at resolution
        assert!(DbNumber::check(&16).is_err());
        assert!(DbNumber::from_text("-1").is_err());
        assert_eq!(Limit::from_text("0"), Ok(None));
        assert_eq!(Flag::from_text(" Yes "), Ok(true));
        assert!(Flag::from_text("maybe").is_err());
        assert_eq!(Password::show(&Secret::new("pw")), "***");
        assert_eq!(Period::document(&Duration::from_secs(30)), "`30`");
        assert_eq!(Limit::document(&None), "no limit");
    }

    #[test]
    fn userinfo_is_hidden() {
        assert_eq!(
            redact_userinfo("redis://:pw@h:6379/0"),
            "redis://***@h:6379/0"
        );
        assert_eq!(redact_userinfo("u:pw@h"), "***@h");
        assert_eq!(redact_userinfo("a@b@h"), "***@h");
        assert_eq!(redact_userinfo("plain-host"), "plain-host");
        assert_eq!(Host::show(&"redis://:pw@h".to_owned()), "redis://***@h");
    }
}
