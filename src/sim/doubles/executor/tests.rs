//! Tests of the simulated executor: virtual time, task order, determinism.
use super::*;
use crate::seams::{timeout_at, Elapsed};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Spawns a task that sleeps `secs` of virtual time, then records `name`.
fn sleeper(sim: &Sim, name: &'static str, secs: u64) {
    let (clock, trace) = (sim.clock().clone(), sim.trace().clone());
    sim.spawner().spawn(Box::pin(async move {
        let deadline = clock.now() + Duration::from_secs(secs);
        clock.sleep_until(deadline).await;
        trace.record(clock.elapsed(), name);
    }));
}

#[test]
fn sleepers_finish_in_deadline_order_in_virtual_time() {
    let started = Instant::now();
    let sim = Sim::new(1);
    sleeper(&sim, "sixty", 60);
    sleeper(&sim, "forty", 40);
    let clock = sim.clock().clone();
    sim.block_on(async move {
        let t = clock.now();
        clock.sleep_until(t + Duration::from_secs(61)).await;
    });
    assert_eq!(
        sim.trace().lines(),
        vec![
            "+40000.000ms forty".to_string(),
            "+60000.000ms sixty".to_string()
        ]
    );
    assert_eq!(sim.tasks(), 0);
    assert!(started.elapsed() < Duration::from_millis(500));
}

/// A minute of tasks that sleep random amounts and record what they see.
fn random_scenario(seed: u64) -> (u64, Vec<String>) {
    let sim = Sim::with_trace(seed, Trace::new());
    for n in 0..4 {
        let mut rng = sim.rng();
        let (clock, trace) = (sim.clock().clone(), sim.trace().clone());
        sim.spawner().spawn(Box::pin(async move {
            let end = clock.now() + Duration::from_secs(60);
            loop {
                let step = Duration::from_millis(rng.between(100, 5_000));
                if clock.now() + step > end {
                    break;
                }
                clock.sleep_until(clock.now() + step).await;
                trace.record(
                    clock.elapsed(),
                    format_args!("task {n} draws {}", rng.below(100)),
                );
            }
        }));
    }
    sim.run_for(Duration::from_secs(60));
    assert_eq!(sim.tasks(), 0);
    (sim.trace().hash(), sim.trace().lines())
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let (a, lines) = random_scenario(42);
    let (b, _) = random_scenario(42);
    let (c, _) = random_scenario(43);
    assert!(lines.len() > 20, "{lines:?}");
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn deadlock_panics_with_the_seed() {
    let sim = Sim::new(99);
    let (_tx, rx) = futures::channel::oneshot::channel::<()>();
    let err = catch_unwind(AssertUnwindSafe(|| sim.block_on(rx))).expect_err("deadlock");
    let msg = err.downcast_ref::<String>().expect("message");
    assert!(msg.contains("deadlock") && msg.contains("seed 99"), "{msg}");
}

#[test]
fn runaway_scenarios_hit_the_poll_bound() {
    let sim = Sim::new(5).with_max_polls(1_000);
    let spin = futures::future::poll_fn(|cx: &mut Context<'_>| {
        cx.waker().wake_by_ref();
        Poll::<()>::Pending
    });
    let err = catch_unwind(AssertUnwindSafe(|| sim.block_on(spin))).expect_err("bound");
    let msg = err.downcast_ref::<String>().expect("message");
    assert!(
        msg.contains("1000 polls") && msg.contains("seed 5"),
        "{msg}"
    );
}

#[test]
fn timeout_at_fires_exactly_at_the_deadline() {
    let sim = Sim::new(2);
    let deadline = sim.clock().now() + Duration::from_secs(45);
    let out = sim.block_on(timeout_at(
        sim.clock(),
        deadline,
        std::future::pending::<()>(),
    ));
    assert_eq!(out, Err(Elapsed));
    assert_eq!(sim.clock().now(), deadline);
}

#[test]
fn tasks_spawn_tasks_and_the_main_future_awaits_them() {
    let sim = Sim::new(3);
    let spawner = sim.spawner();
    let (clock, trace) = (sim.clock().clone(), sim.trace().clone());
    let out = sim.block_on(async move {
        let (tx, rx) = futures::channel::oneshot::channel();
        let inner = spawner.clone();
        spawner.spawn(Box::pin(async move {
            let t = clock.now() + Duration::from_secs(1);
            clock.sleep_until(t).await;
            inner.spawn(Box::pin(async move {
                let t = clock.now() + Duration::from_secs(1);
                clock.sleep_until(t).await;
                trace.record(clock.elapsed(), "grandchild");
                let _ = tx.send(7);
            }));
        }));
        rx.await.expect("sent")
    });
    assert_eq!(out, 7);
    assert_eq!(
        sim.trace().lines(),
        vec!["+2000.000ms grandchild".to_string()]
    );
}

#[test]
fn run_until_stops_at_the_deadline_and_idle_does_not_move_time() {
    let sim = Sim::new(4);
    sleeper(&sim, "late", 90);
    sim.run_until_idle();
    assert_eq!(sim.clock().elapsed(), Duration::ZERO);
    sim.run_for(Duration::from_secs(30));
    assert_eq!(sim.clock().elapsed(), Duration::from_secs(30));
    assert!(sim.trace().is_empty());
    assert_eq!(sim.tasks(), 1);
    sim.run_for(Duration::from_secs(60));
    assert_eq!(sim.trace().lines(), vec!["+90000.000ms late".to_string()]);
}

#[test]
fn wakes_from_another_thread_queue_the_task() {
    let sim = Sim::new(6);
    let (tx, rx) = futures::channel::oneshot::channel::<u8>();
    let trace = sim.trace().clone();
    sim.spawner().spawn(Box::pin(async move {
        let v = rx.await.expect("sent");
        trace.record(Duration::ZERO, v);
    }));
    sim.run_until_idle();
    assert_eq!(sim.tasks(), 1);
    std::thread::spawn(move || tx.send(9).expect("send"))
        .join()
        .expect("thread");
    sim.run_until_idle();
    assert_eq!(sim.tasks(), 0);
    assert_eq!(sim.trace().lines(), vec!["+0.000ms 9".to_string()]);
}

#[test]
fn dropping_the_sim_drops_pending_tasks_unpolled() {
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let sim = Sim::new(8);
    let spawner = sim.spawner();
    let flag = Flag(dropped.clone());
    spawner.spawn(Box::pin(async move {
        let _flag = flag;
        std::future::pending::<()>().await;
    }));
    let clock = sim.clock().clone();
    let polls_before = sim.polls();
    drop(sim);
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(polls_before, 0);
    // The spawner outlives the Sim: later spawns are dropped, not run.
    spawner.spawn(Box::pin(async {}));
    assert_eq!(clock.sleepers(), 0);
}
