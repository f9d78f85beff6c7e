//! The kinds of the Sentinel keys: a list of `host:port` addresses (`sentinel.nodes`) and a
//! server role ([`ServerRole`], key `role`).

use std::fmt;

use super::kinds::{redact_userinfo, text_of, Host, Kind, Port, Scalar, Yaml};
use crate::seams::Endpoint;

/// Which server of a Sentinel-managed set a database talks to (YAML `role`).
///
/// ```
/// use redis_keeper::config::ServerRole;
/// assert_eq!("replica".parse::<ServerRole>(), Ok(ServerRole::Replica));
/// assert_eq!("Master".parse::<ServerRole>(), Ok(ServerRole::Master));
/// assert!("leader".parse::<ServerRole>().is_err());
/// assert_eq!(ServerRole::default().to_string(), "master");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ServerRole {
    /// The master: reads and writes.
    #[default]
    Master,
    /// A healthy replica, round robin over the replicas the sentinels list: reads only (a
    /// write gets the server's `READONLY`, and is not sent anywhere else).
    Replica,
}

impl std::str::FromStr for ServerRole {
    type Err = String;

    /// `master` or `replica`, case-insensitive.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "master" => Ok(Self::Master),
            "replica" => Ok(Self::Replica),
            _ => Err("expected `master` or `replica`".to_owned()),
        }
    }
}

impl fmt::Display for ServerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Master => "master",
            Self::Replica => "replica",
        })
    }
}

/// A list of `host:port` addresses (`[::1]:26379` for IPv6), at least one.
pub(crate) struct Nodes;

impl Kind for Nodes {
    type Value = Vec<String>;
    const YAML: Yaml = Yaml::List;
    fn from_scalar(scalar: Scalar<'_>) -> Result<Vec<String>, String> {
        match scalar {
            Scalar::Str(s) => Self::from_text(s),
            _ => Err("expected a list of host:port addresses".to_owned()),
        }
    }
    fn from_text(text: &str) -> Result<Vec<String>, String> {
        Ok(text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }
    fn check(nodes: &Vec<String>) -> Result<(), String> {
        if nodes.is_empty() {
            return Err("expected at least one host:port address".to_owned());
        }
        for node in nodes {
            parse_node(node)?;
        }
        Ok(())
    }
    fn show(nodes: &Vec<String>) -> String {
        nodes
            .iter()
            .map(|n| redact_userinfo(&n.escape_debug().to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A server role (`master` or `replica`).
pub(crate) struct RoleName;

impl Kind for RoleName {
    type Value = ServerRole;
    const YAML: Yaml = Yaml::Str;
    fn from_scalar(scalar: Scalar<'_>) -> Result<ServerRole, String> {
        text_of(scalar)?.parse()
    }
    fn from_text(text: &str) -> Result<ServerRole, String> {
        text.parse()
    }
    fn show(r: &ServerRole) -> String {
        r.to_string()
    }
}

/// `host:port` (or `[v6]:port`) as an endpoint; the reason when it is not one.
pub(crate) fn parse_node(node: &str) -> Result<Endpoint, String> {
    let bad = || format!("`{}` is not a host:port address", redact_userinfo(node));
    let (host, port) = node.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned();
    Host::check(&host).map_err(|_| bad())?;
    let port = Port::from_text(port).map_err(|_| bad())?;
    Port::check(&port).map_err(|_| bad())?;
    Ok(Endpoint::tcp(host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_parse_from_text_and_check_each_address() {
        let nodes = Nodes::from_text("127.0.0.1:26379, [::1]:26380,").unwrap();
        assert_eq!(nodes, ["127.0.0.1:26379", "[::1]:26380"]);
        assert!(Nodes::check(&nodes).is_ok());
        assert_eq!(
            parse_node("[::1]:26380").unwrap().to_string(),
            "[::1]:26380"
        );
        for bad in ["127.0.0.1", "h:0", "h:x", ":26379", "a b:1"] {
            let err = Nodes::check(&vec![bad.to_owned()]).unwrap_err();
            assert!(err.contains("host:port"), "{bad}: {err}");
        }
        assert!(Nodes::check(&Vec::new()).is_err());
        assert_eq!(Nodes::show(&vec!["u:pw@h:1".to_owned()]), "***@h:1");
    }
}
