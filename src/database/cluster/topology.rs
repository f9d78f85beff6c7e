//! A Redis Cluster's slot map as `CLUSTER SLOTS` gives it, reduced to what the keeper compares
//! between two refreshes: which master serves which slot range, and every node listed.

use redis::Value;

/// The slot map: ranges in slot order, each with its master, and every node listed (masters
/// and replicas, `host:port`). Two refreshes that give equal topologies found nothing moved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Topology {
    /// `(first slot, last slot, master)`, sorted.
    ranges: Vec<(u16, u16, String)>,
    /// Every node listed, sorted, without repeats.
    nodes: Vec<String>,
}

impl Topology {
    /// Reads a `CLUSTER SLOTS` reply; `None` when it is not one (an error reply, a short entry).
    /// A node listed with an empty host (`""`: the node that answered, in some versions) is
    /// given `answered_by`'s host.
    pub(crate) fn parse(reply: &Value, answered_by: &str) -> Option<Self> {
        let Value::Array(entries) = reply else {
            return None;
        };
        let fallback_host = answered_by.rsplit_once(':').map_or("", |(h, _)| h);
        let mut ranges = Vec::with_capacity(entries.len());
        let mut nodes = Vec::new();
        for entry in entries {
            let Value::Array(fields) = entry else {
                return None;
            };
            let [first, last, master, replicas @ ..] = fields.as_slice() else {
                return None;
            };
            let first = slot(first)?;
            let last = slot(last)?;
            let master = node(master, fallback_host)?;
            for replica in replicas {
                nodes.push(node(replica, fallback_host)?);
            }
            nodes.push(master.clone());
            ranges.push((first, last, master));
        }
        ranges.sort();
        nodes.sort();
        nodes.dedup();
        Some(Self { ranges, nodes })
    }

    /// How many distinct masters serve slots.
    pub(crate) fn masters(&self) -> usize {
        let mut masters: Vec<&str> = self.ranges.iter().map(|(_, _, m)| m.as_str()).collect();
        masters.sort_unstable();
        masters.dedup();
        masters.len()
    }

    /// Every node listed (`host:port`), masters and replicas.
    pub(crate) fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Whether every one of the 16 384 slots is served.
    pub(crate) fn covers_all_slots(&self) -> bool {
        let mut next = 0u32;
        for &(first, last, _) in &self.ranges {
            if u32::from(first) > next {
                return false;
            }
            next = next.max(u32::from(last) + 1);
        }
        next == 16_384
    }
}

fn slot(v: &Value) -> Option<u16> {
    match v {
        Value::Int(n) => u16::try_from(*n).ok().filter(|s| *s < 16_384),
        _ => None,
    }
}

/// `[host, port, id?, …]` as `host:port`.
fn node(v: &Value, fallback_host: &str) -> Option<String> {
    let Value::Array(fields) = v else {
        return None;
    };
    let [host, port, ..] = fields.as_slice() else {
        return None;
    };
    let host = match host {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.to_owned(),
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let host = if host.is_empty() || host == "?" {
        fallback_host.to_owned()
    } else {
        host
    };
    let port = match port {
        Value::Int(p) => u16::try_from(*p).ok()?,
        _ => return None,
    };
    Some(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_value(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    fn range(first: i64, last: i64, master: i64, replica: i64) -> Value {
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            node_value("127.0.0.1", master),
            node_value("127.0.0.1", replica),
        ])
    }

    #[test]
    fn a_three_master_map_is_read_and_compared() {
        let reply = Value::Array(vec![
            range(10_923, 16_383, 7002, 7005),
            range(0, 5460, 7000, 7003),
            range(5461, 10_922, 7001, 7004),
        ]);
        let t = Topology::parse(&reply, "127.0.0.1:7000").unwrap();
        assert_eq!(t.masters(), 3);
        assert_eq!(t.nodes().len(), 6);
        assert!(t.covers_all_slots());
        // A failover: 7003 serves the first range now.
        let moved = Value::Array(vec![
            range(0, 5460, 7003, 7000),
            range(5461, 10_922, 7001, 7004),
            range(10_923, 16_383, 7002, 7005),
        ]);
        let after = Topology::parse(&moved, "127.0.0.1:7001").unwrap();
        assert_ne!(t, after);
        assert_eq!(after.masters(), 3);
        // The same map in another order is the same topology.
        let again = Value::Array(vec![
            range(5461, 10_922, 7001, 7004),
            range(0, 5460, 7000, 7003),
            range(10_923, 16_383, 7002, 7005),
        ]);
        assert_eq!(Topology::parse(&again, "x:1").unwrap(), t);
    }

    #[test]
    fn gaps_empty_hosts_and_malformed_replies() {
        let gap = Value::Array(vec![range(0, 100, 7000, 7003)]);
        let t = Topology::parse(&gap, "127.0.0.1:7000").unwrap();
        assert!(!t.covers_all_slots());
        let empty_host = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(16_383),
            node_value("", 7000),
        ])]);
        let t = Topology::parse(&empty_host, "10.0.0.9:7000").unwrap();
        assert_eq!(t.nodes(), ["10.0.0.9:7000"]);
        assert!(Topology::parse(&Value::Okay, "a:1").is_none());
        let bad_slot = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(20_000),
            node_value("h", 1),
        ])]);
        assert!(Topology::parse(&bad_slot, "a:1").is_none());
        let short = Value::Array(vec![Value::Array(vec![Value::Int(0)])]);
        assert!(Topology::parse(&short, "a:1").is_none());
    }
}
