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

use super::{CertReqs, Secret};
use crate::policy::Jitter;

/// Longest accepted duration: one year.
pub(crate) const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// How a kind's YAML value is asked of the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Yaml {
    /// A string (any plain scalar reads as its text).
    Str,
    /// An integer.
    Int,
    /// An integer or a float.
    Number,
    /// `true` or `false`.
    Bool,
    /// A list of strings, or one string of comma-separated items.
    List,
}

/// One YAML scalar, as the parser gave it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'a> {
    Str(&'a str),
    Int(i128),
    Float(f64),
    Bool(bool),
}

/// What a configuration key holds.
pub(crate) trait Kind {
    /// The value, as the layers store it.
    type Value: Clone + PartialEq + fmt::Debug + 'static;
    /// Whether the value is a secret (never shown, not even in a parse error).
    const SECRET: bool = false;
    /// How YAML reads it.
    const YAML: Yaml;
    /// The value of a YAML scalar (type only; [`Kind::check`] follows).
    fn from_scalar(scalar: Scalar<'_>) -> Result<Self::Value, String>;
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

/// Reads `key`'s YAML value and checks it, failing inside the scalar's own deserialization so
/// serde_yaml marks the error with the value's line, column and key path. `null` (or `~`)
/// means "not set here".
pub(crate) struct Read<K>(&'static str, PhantomData<K>);

/// [`Read`] for kind `K`.
pub(crate) fn read_checked<K: Kind>(key: &'static str) -> Read<K> {
    Read(key, PhantomData)
}

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
        let scalar = ScalarOf::<K>(self.0, PhantomData);
        match K::YAML {
            Yaml::Str => d.deserialize_str(scalar),
            Yaml::Int => d.deserialize_i64(scalar),
            Yaml::Number => d.deserialize_any(scalar),
            Yaml::Bool => d.deserialize_bool(scalar),
            Yaml::List => d.deserialize_any(scalar),
        }
        .map(Some)
    }
}

/// Turns one scalar into a checked value of kind `K`.
struct ScalarOf<K>(&'static str, PhantomData<K>);

impl<K: Kind> ScalarOf<K> {
    fn read<E: de::Error>(self, scalar: Scalar<'_>) -> Result<K::Value, E> {
        let shown = || match scalar {
            _ if K::SECRET => "***".to_owned(),
            Scalar::Str(s) => format!("`{}`", s.escape_debug()),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => format!("{f:?}"),
            Scalar::Bool(b) => b.to_string(),
        };
        let value = K::from_scalar(scalar)
            .map_err(|why| E::custom(format!("invalid {} {}: {why}", self.0, shown())))?;
        K::check(&value)
            .map_err(|why| E::custom(format!("invalid {} {}: {why}", self.0, K::show(&value))))?;
        Ok(value)
    }
}

impl<'de, K: Kind> Visitor<'de> for ScalarOf<K> {
    type Value = K::Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match K::YAML {
            Yaml::Str => "a string",
            Yaml::Int => "an integer",
            Yaml::Number => "a number",
            Yaml::Bool => "true or false",
            Yaml::List => "a list of strings",
        };
        write!(f, "{what} for {}", self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<K::Value, E> {
        self.read(Scalar::Str(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<K::Value, E> {
        self.read(Scalar::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<K::Value, E> {
        self.read(Scalar::Int(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<K::Value, E> {
        self.read(Scalar::Float(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<K::Value, E> {
        self.read(Scalar::Bool(v))
    }
    /// A list reads as its items joined by commas (only [`Yaml::List`] kinds ask for one).
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<K::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<String>()? {
            items.push(item);
        }
        self.read(Scalar::Str(&items.join(",")))
    }
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

/// A scalar's text, or the error of a non-string.
pub(crate) fn text_of(scalar: Scalar<'_>) -> Result<&str, String> {
    match scalar {
        Scalar::Str(s) => Ok(s),
        _ => Err("expected a string".to_owned()),
    }
}

/// A scalar's integer, if it fits `T`.
fn integer_of<T: TryFrom<i128> + Bounded + fmt::Display>(scalar: Scalar<'_>) -> Result<T, String> {
    match scalar {
        Scalar::Int(i) => T::try_from(i).map_err(|_| format!("expected 0..={}", T::MAX)),
        _ => Err("expected an integer".to_owned()),
    }
}

/// Parses the text form of an integer that fits `T`.
fn integer_text<T: std::str::FromStr + Bounded + fmt::Display>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("expected an integer in 0..={}", T::MAX))
}

/// The largest value of an integer type.
trait Bounded: Sized {
    const MAX: Self;
}

macro_rules! bounded {
    ($($t:ty),*) => {$(
        impl Bounded for $t {
            const MAX: Self = <$t>::MAX;
        }
    )*};
}
bounded!(u8, u16, u32);

/// Free text.
pub(crate) struct Text;

impl Kind for Text {
    type Value = String;
    const YAML: Yaml = Yaml::Str;
    fn from_scalar(scalar: Scalar<'_>) -> Result<String, String> {
        text_of(scalar).map(str::to_owned)
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
    const YAML: Yaml = Yaml::Str;
    fn from_scalar(scalar: Scalar<'_>) -> Result<String, String> {
        Text::from_scalar(scalar)
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
            Err("expected a host name or address, not a URL (use `url`, or set `password` separately)".to_owned())
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
    const YAML: Yaml = Yaml::Str;
    fn from_scalar(scalar: Scalar<'_>) -> Result<Secret, String> {
        text_of(scalar).map(Secret::new)
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
    const YAML: Yaml = Yaml::Int;
    fn from_scalar(scalar: Scalar<'_>) -> Result<u16, String> {
        integer_of(scalar)
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
    const YAML: Yaml = Yaml::Int;
    fn from_scalar(scalar: Scalar<'_>) -> Result<u8, String> {
        integer_of(scalar).map_err(|_| "expected 0..=15".to_owned())
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
    const YAML: Yaml = Yaml::Int;
    fn from_scalar(scalar: Scalar<'_>) -> Result<u32, String> {
        integer_of(scalar)
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
    const YAML: Yaml = Yaml::Int;
    fn from_scalar(scalar: Scalar<'_>) -> Result<u32, String> {
        Number::from_scalar(scalar)
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
    const YAML: Yaml = Yaml::Bool;
    fn from_scalar(scalar: Scalar<'_>) -> Result<bool, String> {
        match scalar {
            Scalar::Bool(b) => Ok(b),
            _ => Err("expected true or false".to_owned()),
        }
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
    const YAML: Yaml = Yaml::Number;
    fn from_scalar(scalar: Scalar<'_>) -> Result<Duration, String> {
        match scalar {
            Scalar::Int(i) => seconds(i as f64),
            Scalar::Float(f) => seconds(f),
            _ => Err("expected a number of seconds".to_owned()),
        }
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
    const YAML: Yaml = Yaml::Number;
    fn from_scalar(scalar: Scalar<'_>) -> Result<Duration, String> {
        Seconds::from_scalar(scalar)
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
    const YAML: Yaml = Yaml::Number;
    fn from_scalar(scalar: Scalar<'_>) -> Result<Option<Duration>, String> {
        Seconds::from_scalar(scalar).map(|d| (!d.is_zero()).then_some(d))
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
    const YAML: Yaml = Yaml::Str;
    fn from_scalar(scalar: Scalar<'_>) -> Result<Jitter, String> {
        text_of(scalar)?.parse()
    }
    fn from_text(text: &str) -> Result<Jitter, String> {
        text.parse()
    }
    fn show(j: &Jitter) -> String {
        j.to_string()
    }
}

/// A certificate check (`required`, `optional` or `none`).
pub(crate) struct CertReqsName;

impl Kind for CertReqsName {
    type Value = CertReqs;
    const YAML: Yaml = Yaml::Str;
    fn from_scalar(scalar: Scalar<'_>) -> Result<CertReqs, String> {
        text_of(scalar)?.parse()
    }
    fn from_text(text: &str) -> Result<CertReqs, String> {
        text.parse()
    }
    fn show(c: &CertReqs) -> String {
        c.to_string()
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
