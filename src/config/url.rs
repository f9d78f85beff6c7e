//! `url` / `REDIS_URL`: a whole address in one string (`redis://`, `unix://`, `redis+unix://`),
//! read as the keys it stands for (host, port, unix_socket_path, username, password, db).

use std::fmt;

use percent_encoding::percent_decode_str;

use super::Secret;

/// Where a URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UrlTarget {
    /// `redis://host[:port]` (port 6379 when absent).
    Tcp { host: String, port: u16 },
    /// `unix:///path` or `redis+unix:///path`.
    Unix { path: String },
}

/// A parsed Redis URL. `Debug` and [`RedisUrl::redacted`] never show the password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    pub(crate) target: UrlTarget,
    /// `rediss://`: TLS.
    pub(crate) tls: bool,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    /// `/N` (TCP) or `?db=N` (Unix); range-checked as the `db` key.
    pub(crate) db: Option<u8>,
    redacted: String,
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl RedisUrl {
    /// The URL with any password shown as `***`.
    pub(crate) fn redacted(&self) -> &str {
        &self.redacted
    }

    /// Parses `text`; the error never repeats a password.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
        let mut redacted = url.clone();
        if url.password().is_some() {
            let _ = redacted.set_password(Some("***"));
        }
        let redacted = redacted.to_string();
        if url.fragment().is_some() {
            return Err("a URL fragment (`#…`) is not supported".to_owned());
        }
        let (tls, unix) = match url.scheme() {
            "redis" => (false, false),
            "rediss" => (true, false),
            "unix" | "redis+unix" => (false, true),
            other => {
                return Err(format!(
                "unknown scheme `{other}`: expected redis://, rediss://, unix:// or redis+unix://"
            ))
            }
        };
        let decode = |s: &str, what: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|d| d.into_owned())
                .map_err(|_| format!("the {what} is not valid UTF-8 once decoded"))
        };
        let mut username = match url.username() {
            "" => None,
            u => Some(decode(u, "user name")?),
        };
        let mut password = match url.password() {
            None => None,
            Some(p) => Some(Secret::new(decode(p, "password")?)),
        };
        let mut db = None;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), unix) {
                ("db", true) => db = Some(db_number(&value)?),
                ("user", true) => username = Some(value.into_owned()),
                ("pass" | "password", true) => password = Some(Secret::new(value.as_ref())),
                (other, _) => return Err(format!("unknown query parameter `{other}`")),
            }
        }
        let target = if unix {
            if url.host_str().is_some_and(|h| !h.is_empty()) {
                return Err("a unix:// URL has a path, not a host (unix:///run/redis.sock)".into());
            }
            let path = decode(url.path(), "path")?;
            if path.is_empty() || path == "/" {
                return Err("a unix:// URL needs the socket's path".to_owned());
            }
            UrlTarget::Unix { path }
        } else {
            let host = match url.host() {
                Some(url::Host::Domain(d)) => d.to_owned(),
                Some(url::Host::Ipv4(v4)) => v4.to_string(),
                Some(url::Host::Ipv6(v6)) => v6.to_string(),
                None => return Err("the URL has no host".to_owned()),
            };
            match url.path().trim_matches('/') {
                "" => {}
                n => db = Some(db_number(n)?),
            }
            UrlTarget::Tcp {
                host,
                port: url.port().unwrap_or(6379),
            }
        };
        Ok(Self {
            target,
            tls,
            username,
            password,
            db,
            redacted,
        })
    }
}

/// A database number from a URL (`0..=255` here; `0..=15` is checked as the `db` key).
fn db_number(text: &str) -> Result<u8, String> {
    text.parse()
        .map_err(|_| format!("invalid database number `{}`", text.escape_debug()))
}

/// The kind of the `url` key: the text is a [`Secret`] (it may hold a password), checked by
/// parsing it, shown with its password hidden.
pub(crate) struct Url;

impl super::kinds::Kind for Url {
    type Value = Secret;
    const SECRET: bool = true;
    const YAML: super::kinds::Yaml = super::kinds::Yaml::Str;
    fn from_scalar(scalar: super::kinds::Scalar<'_>) -> Result<Secret, String> {
        super::kinds::Password::from_scalar(scalar)
    }
    fn from_text(text: &str) -> Result<Secret, String> {
        Ok(Secret::new(text))
    }
    fn check(url: &Secret) -> Result<(), String> {
        RedisUrl::parse(url.expose()).map(|_| ())
    }
    fn show(url: &Secret) -> String {
        RedisUrl::parse(url.expose()).map_or_else(|_| "***".to_owned(), |u| u.redacted().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> UrlTarget {
        UrlTarget::Tcp {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn the_forms_parse_into_their_parts() {
        let u = RedisUrl::parse("redis://app:p%40ss%3Aw0rd@cache.internal:6380/4").unwrap();
        assert_eq!(u.target, tcp("cache.internal", 6380));
        assert_eq!(u.username.as_deref(), Some("app"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("p@ss:w0rd"));
        assert_eq!(u.db, Some(4));
        assert!(!u.tls);
        assert!(!format!("{u:?}").contains("p%40ss") && u.redacted().contains("***"));

        let u = RedisUrl::parse("redis://:only-pw@127.0.0.1").unwrap();
        assert_eq!(
            (u.target.clone(), u.username.clone(), u.db),
            (tcp("127.0.0.1", 6379), None, None)
        );
        assert_eq!(u.password.unwrap().expose(), "only-pw");

        let u = RedisUrl::parse("redis://[::1]:7000").unwrap();
        assert_eq!(u.target, tcp("::1", 7000));

        assert!(RedisUrl::parse("rediss://h:6380").unwrap().tls);

        for text in [
            "unix:///run/redis.sock?db=3",
            "redis+unix:///run/redis.sock?db=3",
        ] {
            let u = RedisUrl::parse(text).unwrap();
            assert_eq!(
                u.target,
                UrlTarget::Unix {
                    path: "/run/redis.sock".into()
                },
                "{text}"
            );
            assert_eq!(u.db, Some(3));
        }
        let u = RedisUrl::parse("unix:///tmp/r.sock?user=app&pass=s3cret").unwrap();
        assert_eq!(u.password.unwrap().expose(), "s3cret");
    }

    #[test]
    fn bad_urls_are_errors_that_never_show_the_password() {
        for text in [
            "http://:hunter2@h",
            "redis://:hunter2@h/x",
            "redis://:hunter2@h/300",
            "redis://:hunter2@h?timeout=1",
            "redis://:hunter2@h#insecure",
            "unix://:hunter2@host/path",
            "unix:///",
            "redis://:hunter2@:6379",
            "not a url hunter2",
        ] {
            let err = RedisUrl::parse(text).unwrap_err();
            assert!(!err.contains("hunter2"), "{text}: {err}");
        }
    }
}
