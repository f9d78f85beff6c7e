//! The generator behind the key table ([`keys`](super::keys)): one row per configuration key
//! becomes the layer field, the YAML reader (aliases included), the text parser, the default,
//! the check, the code setter and the README row.

/// Where a key may be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// At the top level (a default for every database) and per database.
    Both,
    /// Per database only.
    Db,
}

/// Which YAML map a key is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// The document's top level.
    Top,
    /// One entry of `redis_databases:`.
    Db,
}

impl Scope {
    /// Whether a key of this scope may appear at `level`.
    pub(crate) fn allows(self, level: Level) -> bool {
        self == Self::Both || level == Level::Db
    }

    /// The README's "Level" column.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn shown(self) -> &'static str {
        match self {
            Self::Both => "top, db",
            Self::Db => "db",
        }
    }
}

/// One canonical key, as data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySpec {
    /// The YAML key (lower case); the environment uses it upper-cased.
    pub(crate) name: &'static str,
    /// Where it may be set.
    pub(crate) scope: Scope,
    /// A short environment variable that sets it for every database (e.g. `REDIS_HOST`).
    pub(crate) env: Option<&'static str>,
    /// Whether its value is a secret.
    pub(crate) secret: bool,
    /// What it means (the README's "Meaning" column).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) doc: &'static str,
}

/// A seed name for one or more canonical keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AliasSpec {
    /// The YAML key.
    pub(crate) name: &'static str,
    /// The canonical keys it sets.
    pub(crate) targets: &'static [&'static str],
    /// What it means.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) doc: &'static str,
}

/// The type a resolved key has: its kind's value, or an `Option` of it when it has no default.
macro_rules! resolved_type {
    (unset, $kind:ty) => { Option<<$kind as Kind>::Value> };
    ($other:ident, $kind:ty) => { <$kind as Kind>::Value };
}
pub(crate) use resolved_type;

/// A key's default value in the defaults layer (`None` when it has none of its own).
macro_rules! default_value {
    (value ($e:expr)) => {
        Some($e)
    };
    (follows ($other:ident)) => {
        None
    };
    (unset ($doc:literal)) => {
        None
    };
}
pub(crate) use default_value;

/// A key's default as the README shows it.
#[cfg(test)]
macro_rules! default_doc {
    ($kind:ty, value ($e:expr)) => {
        <$kind as Kind>::document(&$e)
    };
    ($kind:ty, follows ($other:ident)) => {
        format!("`{}`", stringify!($other))
    };
    ($kind:ty, unset ($doc:literal)) => {
        $doc.to_owned()
    };
}
#[cfg(test)]
pub(crate) use default_doc;

/// A key's resolved value from a merged layer: checked, its default followed if it has one.
macro_rules! resolve_key {
    ($p:ident, $bad:ident, $key:ident, $kind:ty, unset ($doc:literal)) => {
        match &$p.$key {
            Some(v) => {
                <$kind as Kind>::check(v).map_err(|why| $bad(stringify!($key), &why))?;
                Some(v.clone())
            }
            None => None,
        }
    };
    ($p:ident, $bad:ident, $key:ident, $kind:ty, follows ($other:ident)) => {
        match &$p.$key {
            Some(v) => {
                <$kind as Kind>::check(v).map_err(|why| $bad(stringify!($key), &why))?;
                v.clone()
            }
            None => $p
                .$other
                .clone()
                .ok_or_else(|| $bad(stringify!($other), "missing"))?,
        }
    };
    ($p:ident, $bad:ident, $key:ident, $kind:ty, value ($e:expr)) => {{
        let v = $p
            .$key
            .as_ref()
            .ok_or_else(|| $bad(stringify!($key), "missing"))?;
        <$kind as Kind>::check(v).map_err(|why| $bad(stringify!($key), &why))?;
        v.clone()
    }};
}
pub(crate) use resolve_key;

/// Generates everything a configuration key needs from one row per key (see
/// [`keys`](super::keys) for the row syntax).
macro_rules! config_keys {
    (
        keys {
            $(
                $(#[doc = $doc:literal])*
                $key:ident : $kind:ty, $scope:ident, $how:ident ( $($dflt:tt)* )
                $(, env $env:literal)?
                $(, set $method:ident ( $arg:ty ))?
                ;
            )*
        }
        aliases {
            $(
                $(#[doc = $adoc:literal])*
                $alias:ident : $akind:ty => $($target:ident),+ ;
            )*
        }
    ) => {
        /// Settings of one layer; `None` means "not set here".
        #[derive(Debug, Clone, Default)]
        pub(crate) struct Partial {
            $(pub(crate) $key: Option<<$kind as Kind>::Value>,)*
        }

        /// Every canonical key.
        pub(crate) const KEYS: &[KeySpec] = &[$(KeySpec {
            name: stringify!($key),
            scope: Scope::$scope,
            env: first_of!($($env)?),
            secret: <$kind as Kind>::SECRET,
            doc: concat!($($doc),*),
        }),*];

        /// Every seed alias.
        pub(crate) const ALIASES: &[AliasSpec] = &[$(AliasSpec {
            name: stringify!($alias),
            targets: &[$(stringify!($target)),+],
            doc: concat!($($adoc),*),
        }),*];

        /// A merged layer, resolved: every key checked, defaults followed.
        #[derive(Debug)]
        pub(crate) struct Values {
            $(pub(crate) $key: resolved_type!($how, $kind),)*
        }

        impl Values {
            /// Checks every key of `p` (its kind's rule; a missing key with a default is an
            /// error, the defaults layer being under every other).
            pub(crate) fn resolve(
                p: &Partial,
                bad: &dyn Fn(&str, &str) -> ConfigError,
            ) -> Result<Self, ConfigError> {
                Ok(Self {
                    $($key: resolve_key!(p, bad, $key, $kind, $how ($($dflt)*)),)*
                })
            }
        }

        /// The built-in defaults, as the lowest layer.
        pub(crate) fn defaults() -> Layer {
            let mut layer = Layer::new(Origin::Default);
            $(layer.values.$key = default_value!($how ($($dflt)*));)*
            layer
        }

        /// Each key's default as the README shows it, by key.
        #[cfg(test)]
        pub(crate) fn documented_defaults() -> Vec<(&'static str, String)> {
            vec![$((stringify!($key), default_doc!($kind, $how ($($dflt)*))),)*]
        }

        impl Partial {
            /// Parses `text` into the canonical `key`; `None` if no such key.
            pub(crate) fn set_text(&mut self, key: &str, text: &str) -> Option<Result<(), String>> {
                match key {
                    $(stringify!($key) => Some(
                        <$kind as Kind>::from_text(text).map(|v| self.$key = Some(v))
                    ),)*
                    _ => None,
                }
            }

            /// The shown value of `key` (`***` for secrets), if set.
            pub(crate) fn show(&self, key: &str) -> Option<String> {
                match key {
                    $(stringify!($key) => self.$key.as_ref().map(<$kind as Kind>::show),)*
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

        /// Reads the YAML value of `key` (canonical or alias) into `sink`; `Ok(false)` if no
        /// key of that name may appear at `level` (the value is then left unread).
        pub(crate) fn read_yaml<'de, A: MapAccess<'de>>(
            key: &str,
            level: Level,
            map: &mut A,
            sink: &mut YamlSink<'_>,
        ) -> Result<bool, A::Error> {
            match key {
                $(stringify!($key) if Scope::$scope.allows(level) => {
                    sink.first_time(stringify!($key))?;
                    if let Some(v) = map.next_value_seed(read_checked::<$kind>(stringify!($key)))? {
                        sink.put(stringify!($key), stringify!($key), v, |p| &mut p.$key)?;
                    }
                })*
                $(stringify!($alias) => {
                    sink.first_time(stringify!($alias))?;
                    if let Some(v) = map.next_value_seed(read_checked::<$akind>(stringify!($alias)))? {
                        $(sink.put(stringify!($target), stringify!($alias), v.clone(), |p| &mut p.$target)?;)+
                    }
                })*
                _ => return Ok(false),
            }
            Ok(true)
        }

        impl DatabaseOverrides {
            $(setter!([$(#[doc = $doc])*] $key $(, $method($arg))?);)*
        }
    };
}
pub(crate) use config_keys;

/// The code-layer setter of a key that has one.
macro_rules! setter {
    ([$($attr:tt)*] $key:ident) => {};
    ([$($attr:tt)*] $key:ident, $method:ident($arg:ty)) => {
        $($attr)*
        #[doc = ""]
        #[doc = concat!("YAML key `", stringify!($key), "`.")]
        pub fn $method(mut self, value: $arg) -> Self {
            self.0.values.$key = Some(value.into());
            self
        }
    };
}
pub(crate) use setter;

/// `Some(first)` of an optional literal, or `None`.
macro_rules! first_of {
    () => {
        None
    };
    ($e:literal) => {
        Some($e)
    };
}
pub(crate) use first_of;
