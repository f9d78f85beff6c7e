//! The watchdog in virtual time: it fires exactly at the oldest outstanding deadline, failing
//! every command in flight, and never otherwise; it keeps at most one timer and parks when idle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Watchdog;
use crate::database::driver::{driver_task, Driver};
use crate::seams::{Clock, Runtime, Spawn};
use crate::sim::Sim;

/// A watchdog over a stand-in driver task; the flag says whether that task's driver was dropped.
fn setup(sim: &Sim) -> (Arc<Watchdog>, Runtime, Arc<Driver>, Arc<AtomicBool>) {
    let runtime = sim.runtime(Arc::new(sim.redis().transport()));
    let ended = Arc::new(AtomicBool::new(false));
    let flag = ended.clone();
    /// Sets its flag when dropped (the driver task dropped the driver).
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let (task, driver) = driver_task(async move {
        let _guard = SetOnDrop(flag);
        futures::future::pending::<()>().await;
    });
    sim.spawner().spawn(Box::pin(task));
    let dog = Arc::new(Watchdog::new(driver.clone()));
    (dog, runtime, driver, ended)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn an_overdue_command_fails_the_connection_exactly_at_its_deadline() {
    let sim = Sim::new(1);
    let (dog, rt, closed, ended) = setup(&sim);
    let t0 = sim.clock().now();
    let first = dog.register(t0 + secs(5), &rt);
    sim.run_for(secs(2));
    // A later command is in flight too when the first one's deadline passes.
    let second = dog.register(t0 + secs(7), &rt);
    sim.run_until(t0 + secs(5) - Duration::from_nanos(1));
    assert!(!closed.is_closed() && !first.timed_out());
    sim.run_until(t0 + secs(5));
    assert!(closed.is_closed(), "marked closed at the deadline");
    assert!(
        ended.load(Ordering::Acquire),
        "driver aborted at the deadline"
    );
    assert!(
        first.timed_out() && second.timed_out(),
        "every command in flight fails"
    );
    // A command sent after the firing was not in flight then: its failure is not a timeout.
    let late = dog.register(t0 + secs(10), &rt);
    assert!(!late.timed_out());
    drop((first, second, late));
    sim.run_for(secs(60));
    assert_eq!(sim.clock().sleepers(), 0, "a fired watchdog sleeps no more");
}

#[test]
fn commands_answered_in_time_never_fire_and_the_task_parks_when_idle() {
    let sim = Sim::new(2);
    let (dog, rt, closed, _) = setup(&sim);
    let t0 = sim.clock().now();
    // Many commands, overlapping, each answered before its deadline: one timer at most.
    for k in 0..50u64 {
        let tickets: Vec<_> = (0..4)
            .map(|_| dog.register(sim.clock().now() + secs(5), &rt))
            .collect();
        sim.run_for(Duration::from_millis(100 * (k % 7) + 1));
        assert!(sim.clock().sleepers() <= 1, "one timer per connection");
        assert!(tickets.iter().all(|t| !t.timed_out()));
    }
    sim.run_for(secs(30));
    assert!(!closed.is_closed());
    assert_eq!(
        sim.clock().sleepers(),
        0,
        "nothing outstanding: parked, no timer"
    );
    assert_eq!(sim.tasks(), 2, "the driver and the parked watchdog");
    // A registration wakes it again, and it fires exactly at that deadline.
    let t1 = sim.clock().now();
    let ticket = dog.register(t1 + secs(5), &rt);
    sim.run_until(t1 + secs(5));
    assert!(ticket.timed_out() && closed.is_closed());
    assert!(sim.clock().now() - t0 > secs(35));
}

#[test]
fn a_dropped_command_is_no_longer_watched() {
    let sim = Sim::new(3);
    let (dog, rt, closed, _) = setup(&sim);
    let t0 = sim.clock().now();
    let cancelled = dog.register(t0 + secs(5), &rt);
    let answered_later = dog.register(t0 + secs(6), &rt);
    sim.run_for(secs(1));
    drop(cancelled); // the caller dropped its future
    sim.run_until(t0 + secs(5));
    assert!(
        !closed.is_closed(),
        "the cancelled command's deadline is not watched"
    );
    sim.run_until(t0 + secs(6));
    assert!(
        answered_later.timed_out(),
        "the next oldest still is, at its own deadline"
    );
}

#[test]
fn deadlines_registered_out_of_order_keep_the_queue_sorted() {
    let sim = Sim::new(4);
    let (dog, rt, closed, _) = setup(&sim);
    let t0 = sim.clock().now();
    let a = dog.register(t0 + secs(5), &rt);
    let b = dog.register(t0 + secs(4), &rt); // read its clock earlier, registered later
    drop(a);
    sim.run_until(t0 + secs(4));
    assert!(
        !closed.is_closed(),
        "raised to the latest deadline registered"
    );
    sim.run_until(t0 + secs(5));
    assert!(b.timed_out());
}

#[test]
fn stopping_ends_the_task() {
    let sim = Sim::new(5);
    let (dog, rt, closed, _) = setup(&sim);
    let t0 = sim.clock().now();
    let ticket = dog.register(t0 + secs(5), &rt);
    sim.run_for(secs(1));
    assert_eq!(sim.tasks(), 2);
    dog.stop();
    sim.run_for(secs(10));
    assert_eq!(sim.tasks(), 1, "only the stand-in driver is left");
    assert!(!closed.is_closed() && !ticket.timed_out());
}
