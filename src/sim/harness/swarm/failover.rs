//! Swarm runs with Sentinel failovers: two data servers (a master and its replica), two
//! sentinels on one [`SimNetwork`], every database Sentinel-backed, and a script of failovers
//! as real sentinels make them: the announcement, the promotion one tick later (the replica
//! takes the master's data), `+switch-master` from the leader 0.7 s after that and from the
//! other sentinel 1.5 s later (which names the old master until then), and the old master
//! demoted (its clients closed) 10 s after the leader's switch. While the old master is still writable the run checks that
//! nothing reaches it after the promotion: every acknowledged write must be on the new master.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::spec::{ms, FailoverSpec};
use super::World;
use crate::config::KeeperConfig;
use crate::seams::{Clock, Transport};
use crate::sim::doubles::{Faults, Latency, Sim};
use crate::sim::server::{SimNetwork, SimRedis, SimRole};

const DATA: [&str; 2] = ["127.0.0.1:16379", "127.0.0.1:16380"];
const SENTINELS: [&str; 2] = ["127.0.0.1:26379", "127.0.0.1:26380"];
/// Every logical database of the servers (the swarm's databases use some of them).
const DBS: usize = 16;

/// The servers of a failover run.
pub(super) struct Servers {
    data: [SimRedis; 2],
    sentinels: Vec<SimRedis>,
    net: SimNetwork,
    /// Which of `data` is the master now.
    master: AtomicUsize,
}

impl Servers {
    /// Two data servers (the first the master) and two sentinels naming it, with `latency`.
    pub(super) fn new(sim: &Sim, latency: Latency) -> Self {
        let net = SimNetwork::new();
        let data = [sim.redis(), sim.redis()];
        for (server, addr) in data.iter().zip(DATA) {
            server.set_faults(Faults {
                latency,
                ..Faults::default()
            });
            net.add(addr, server.clone());
        }
        data[1].set_role(SimRole::Replica {
            master: DATA[0].to_owned(),
        });
        let sentinels = SENTINELS
            .iter()
            .map(|addr| {
                let s = sim.redis();
                s.set_sentinel(&[("mymaster", DATA[0])]);
                net.add(addr, s.clone());
                s
            })
            .collect();
        Self {
            data,
            sentinels,
            net,
            master: AtomicUsize::new(0),
        }
    }

    /// The first data server (the world's `redis`: restarts, heal).
    pub(super) fn first(&self) -> SimRedis {
        self.data[0].clone()
    }

    /// The transport of the Keeper.
    pub(super) fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.net.clone())
    }

    /// `config` with every database following `mymaster` through the sentinels.
    pub(super) fn configure(config: KeeperConfig) -> KeeperConfig {
        config.configure_all(|d| {
            d.sentinel_master_name("mymaster")
                .sentinel_nodes(SENTINELS.iter().map(|s| s.to_string()).collect())
        })
    }

    /// Clients still connected to any of the servers.
    pub(super) fn connected_clients(&self) -> usize {
        self.data
            .iter()
            .chain(&self.sentinels)
            .map(SimRedis::connected_clients)
            .sum()
    }

    /// Every string of every database of `server`.
    fn snapshot(server: &SimRedis) -> Vec<(usize, Vec<u8>, Option<Vec<u8>>)> {
        (0..DBS)
            .flat_map(|db| {
                server
                    .keys(db)
                    .into_iter()
                    .map(move |k| (db, k.clone(), server.get(db, &k)))
            })
            .collect()
    }
}

impl World {
    /// Runs the failover script of `spec` (bounded: a fixed number of steps).
    pub(super) async fn run_failovers(&self, servers: &Servers, spec: &FailoverSpec) {
        let start = self.clock.now();
        for (i, (at, announced)) in spec.starts.iter().enumerate() {
            self.clock.sleep_until(start + *at).await;
            let old = servers.master.load(Ordering::Acquire);
            let (from, to) = (&servers.data[old], &servers.data[1 - old]);
            if *announced {
                let announcing = &servers.sentinels[i % servers.sentinels.len()];
                announcing.publish(
                    "+try-failover",
                    &format!("master mymaster {}", DATA[old].replace(':', " ")),
                );
                self.record(format_args!("failover {i}: announced"));
            }
            self.clock.sleep_until(self.clock.now() + ms(100)).await;
            // The promotion: the replica has what the master had (replication caught up; the
            // swarm's traffic never deletes a key, so copying the master's strings suffices).
            let at_promotion = Servers::snapshot(from);
            for (db, key, value) in &at_promotion {
                if let Some(v) = value {
                    to.set(*db, key, v);
                }
            }
            to.set_role(SimRole::Master);
            if !announced {
                from.set_role(SimRole::Replica {
                    master: DATA[1 - old].to_owned(),
                });
            }
            self.record(format_args!("failover {i}: promoted {}", DATA[1 - old]));
            self.clock.sleep_until(self.clock.now() + ms(700)).await;
            let switch = format!(
                "mymaster {} {}",
                DATA[old].replace(':', " "),
                DATA[1 - old].replace(':', " ")
            );
            // The leader switches first; the other sentinel hears of it (by the leader's hello
            // messages) 1.5 s later and names the old master until then.
            let n = servers.sentinels.len();
            let leader = i % n;
            for k in 0..n {
                if k == 1 {
                    self.clock.sleep_until(self.clock.now() + ms(1_500)).await;
                }
                let s = &servers.sentinels[(leader + k) % n];
                s.sentinel_set_master("mymaster", DATA[1 - old]);
                s.publish("+switch-master", &switch);
            }
            servers.master.store(1 - old, Ordering::Release);
            self.record(format_args!("failover {i}: switched"));
            // The old master stays writable until it is demoted, 10 s after the leader's switch.
            self.clock.sleep_until(self.clock.now() + ms(8_500)).await;
            if Servers::snapshot(from) != at_promotion {
                self.violation(format!(
                    "failover {i}: a write reached the old master {} after the promotion",
                    DATA[old]
                ));
            }
            from.set_role(SimRole::Replica {
                master: DATA[1 - old].to_owned(),
            });
            from.kill_all();
            self.record(format_args!("failover {i}: demoted {}", DATA[old]));
        }
    }
}
