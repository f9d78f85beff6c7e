//! The swarm's phase-one traffic: each task's operations (INCR, SET/GET, pipelines, atomic
//! pipelines, transactions, held exclusive connections, PING), cancelled at random instants.

use std::time::{Duration, Instant};

use super::spec::{ms, TaskSpec, COUNTERS};
use super::World;
use crate::rng::Rng;
use crate::seams::Clock;

impl World {
    pub(super) async fn run_task(&self, index: usize, spec: TaskSpec) {
        let mut rng = Rng::new(spec.seed);
        let mix = self.spec.mix;
        let weights = [
            mix.incr,
            mix.set_get,
            mix.pipeline,
            mix.atomic,
            mix.transaction,
            mix.hold,
            mix.ping,
        ];
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut seq = 0i64;
        for _ in 0..spec.ops {
            let think = if spec.on_grid {
                ms(250 * rng.below(spec.think_max.as_millis() as u64 / 250 + 1))
            } else {
                ms(rng.below(spec.think_max.as_millis() as u64 + 1))
            };
            self.clock.sleep_until(self.clock.now() + think).await;
            let db = rng.below(self.spec.dbs.len() as u64) as usize;
            let cancel_at = rng.chance(self.spec.cancel_rate).then(|| {
                let d = &self.spec.dbs[db];
                let span = d.response_timeout * 2 + d.pool_wait_timeout;
                self.clock.now() + ms(rng.below(span.as_millis() as u64 + 1))
            });
            let mut pick = rng.below(total.max(1));
            let mut op = 0;
            for (i, w) in weights.iter().enumerate() {
                if pick < u64::from(*w) {
                    op = i;
                    break;
                }
                pick -= u64::from(*w);
            }
            let a = format!("c{}", rng.below(COUNTERS));
            let b = format!("c{}", rng.below(COUNTERS));
            match op {
                0 => self.op_incr(index, db, &a, cancel_at).await,
                1 => {
                    seq += 1;
                    self.op_set_get(index, db, seq, cancel_at).await;
                }
                2 | 3 => {
                    self.op_pipeline(index, db, &a, &b, op == 3, cancel_at)
                        .await
                }
                4 => self.op_transaction(index, db, &a, &b, cancel_at).await,
                5 => {
                    let hold = ms(250 * rng.below(8));
                    self.op_hold(index, db, &a, hold, cancel_at).await;
                }
                _ => self.op_ping(index, db, cancel_at).await,
            }
            self.check_invariants(&format!("after an operation of task {index}"));
        }
    }

    pub(super) fn db_name(&self, db: usize) -> &'static str {
        self.spec.dbs[db].name
    }

    pub(super) async fn op_incr(
        &self,
        task: usize,
        db: usize,
        key: &str,
        cancel_at: Option<Instant>,
    ) {
        let epoch = self.redis.restarts();
        self.incr_started(db, key);
        let r = self
            .maybe_cancel(cancel_at, async {
                let mut c = self.keeper.get(self.db_name(db)).await?;
                let v: i64 = redis::cmd("INCR").arg(key).query_async(&mut c).await?;
                Ok(v)
            })
            .await;
        self.outcome(task, &format!("INCR {}/{key}", self.db_name(db)), &r);
        self.incr_finished(db, &[key], epoch, r.as_ref().ok().map(std::slice::from_ref));
    }

    pub(super) async fn op_pipeline(
        &self,
        task: usize,
        db: usize,
        a: &str,
        b: &str,
        atomic: bool,
        cancel_at: Option<Instant>,
    ) {
        let epoch = self.redis.restarts();
        self.incr_started(db, a);
        self.incr_started(db, b);
        let r = self
            .maybe_cancel(cancel_at, async {
                let (x, y): (i64, i64) = self
                    .keeper
                    .pipeline(self.db_name(db), |p| {
                        if atomic {
                            p.atomic();
                        }
                        p.incr(a, 1).incr(b, 1);
                    })
                    .await?;
                Ok([x, y])
            })
            .await;
        let what = if atomic { "MULTI-PIPELINE" } else { "PIPELINE" };
        self.outcome(task, &format!("{what} {}/{a},{b}", self.db_name(db)), &r);
        self.incr_finished(db, &[a, b], epoch, r.as_ref().ok().map(|v| &v[..]));
    }

    pub(super) async fn op_transaction(
        &self,
        task: usize,
        db: usize,
        a: &str,
        b: &str,
        cancel_at: Option<Instant>,
    ) {
        let epoch = self.redis.restarts();
        self.incr_started(db, a);
        self.incr_started(db, b);
        let r = self
            .maybe_cancel(cancel_at, async {
                let mut c = self.keeper.get_exclusive(self.db_name(db)).await?;
                let () = redis::cmd("MULTI").query_async(&mut c).await?;
                let () = redis::cmd("INCR").arg(a).query_async(&mut c).await?;
                let () = redis::cmd("INCR").arg(b).query_async(&mut c).await?;
                let (x, y): (i64, i64) = redis::cmd("EXEC").query_async(&mut c).await?;
                Ok([x, y])
            })
            .await;
        self.outcome(
            task,
            &format!("MULTI/EXEC {}/{a},{b}", self.db_name(db)),
            &r,
        );
        self.incr_finished(db, &[a, b], epoch, r.as_ref().ok().map(|v| &v[..]));
    }

    pub(super) async fn op_hold(
        &self,
        task: usize,
        db: usize,
        key: &str,
        hold: Duration,
        cancel_at: Option<Instant>,
    ) {
        let epoch = self.redis.restarts();
        self.incr_started(db, key);
        let r = self
            .maybe_cancel(cancel_at, async {
                let mut c = self.keeper.get_exclusive(self.db_name(db)).await?;
                let v: i64 = redis::cmd("INCR").arg(key).query_async(&mut c).await?;
                Ok((c, v))
            })
            .await;
        let (conn, r) = match r {
            Ok((c, v)) => (Some(c), Ok(v)),
            Err(e) => (None, Err(e)),
        };
        self.outcome(
            task,
            &format!("EXCLUSIVE INCR {}/{key}", self.db_name(db)),
            &r,
        );
        self.incr_finished(db, &[key], epoch, r.as_ref().ok().map(std::slice::from_ref));
        if let Some(conn) = conn {
            self.clock.sleep_until(self.clock.now() + hold).await;
            drop(conn);
        }
    }

    pub(super) async fn op_ping(&self, task: usize, db: usize, cancel_at: Option<Instant>) {
        let r = self
            .maybe_cancel(cancel_at, async {
                let mut c = self.keeper.get(self.db_name(db)).await?;
                let v: String = redis::cmd("PING").query_async(&mut c).await?;
                Ok(v)
            })
            .await;
        if let Ok(v) = &r {
            if v != "PONG" {
                self.violation(format!("PING answered {v:?}"));
            }
        }
        self.outcome(task, &format!("PING {}", self.db_name(db)), &r);
    }

    pub(super) async fn op_set_get(
        &self,
        task: usize,
        db: usize,
        seq: i64,
        cancel_at: Option<Instant>,
    ) {
        let key = format!("r{task}");
        let name = self.db_name(db);
        let epoch = self.redis.restarts();
        self.model()
            .registers
            .entry((db, key.clone()))
            .or_default()
            .attempted
            .push(seq);
        let r = self
            .maybe_cancel(cancel_at, async {
                let mut c = self.keeper.get(name).await?;
                let () = redis::cmd("SET")
                    .arg(&key)
                    .arg(seq)
                    .query_async(&mut c)
                    .await?;
                Ok(())
            })
            .await;
        self.outcome(task, &format!("SET {name}/{key} {seq}"), &r);
        {
            let mut m = self.model();
            let reg = m.registers.entry((db, key.clone())).or_default();
            match r {
                Ok(()) => reg.last_ack = Some((seq, epoch)),
                Err(_) => reg.unknown = true,
            }
        }
        let epoch = self.redis.restarts();
        let r = async {
            let mut c = self.keeper.get(name).await?;
            let v: Option<i64> = redis::cmd("GET").arg(&key).query_async(&mut c).await?;
            Ok(v)
        }
        .await;
        self.outcome(task, &format!("GET {name}/{key}"), &r);
        let Ok(v) = r else { return };
        let same_epoch = self.redis.restarts() == epoch;
        let problem = {
            let m = self.model();
            let reg = &m.registers[&(db, key.clone())];
            match v {
                Some(v) if !reg.attempted.contains(&v) => {
                    Some(format!("GET {name}/{key} read {v}, never written"))
                }
                _ if !same_epoch || reg.unknown => None,
                got => match reg.last_ack {
                    Some((want, at)) if at == epoch && got != Some(want) => Some(format!(
                        "GET {name}/{key} read {got:?} after SET {want} was acknowledged"
                    )),
                    _ => None,
                },
            }
        };
        if let Some(p) = problem {
            self.violation(p);
        }
    }
}
