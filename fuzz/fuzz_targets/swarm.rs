//! Fuzz target: the swarm scenario body (`redis_keeper::sim::swarm::run`, the same code as
//! `tests/swarm.rs`) with a spec drawn from a seed, then steered by the input: fewer or shorter
//! tasks, another cancel rate, and extra fault episodes at chosen instants. Any violation panics.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use redis_keeper::sim::swarm::{run, SwarmSpec};
use redis_keeper::sim::{Fault, Restart};

#[derive(Debug, Arbitrary)]
struct Input {
    seed: u64,
    /// Keep at most this many tasks (1..=8).
    tasks: u8,
    /// Cap each task's operations (1..=24) so one run stays fast.
    ops: u8,
    /// Percent of operations cancelled, if set.
    cancel_percent: Option<u8>,
    episodes: Vec<Episode>,
}

#[derive(Debug, Arbitrary)]
struct Episode {
    /// Start, in 100 ms steps.
    at: u16,
    /// Length, in 100 ms steps.
    length: u16,
    kind: u8,
}

fuzz_target!(|input: Input| {
    let mut spec = SwarmSpec::draw(input.seed);
    spec.tasks.truncate(usize::from(input.tasks % 8) + 1);
    for task in &mut spec.tasks {
        task.ops = task.ops.min(u32::from(input.ops % 24) + 1);
    }
    if let Some(p) = input.cancel_percent {
        spec.cancel_rate = f64::from(p % 101) / 100.0;
    }
    for e in input.episodes.iter().take(8) {
        let at = Duration::from_millis(u64::from(e.at % 1200) * 100);
        let length = Duration::from_millis(u64::from(e.length % 600) * 100 + 1);
        let fault = match e.kind % 9 {
            0 => Fault::Refuse { duration: length },
            1 => Fault::Loading { duration: length },
            2 => Fault::Stall { duration: length },
            3 => Fault::ResetMidReply,
            4 => Fault::Restart(Restart {
                down: length / 2,
                loading: length / 2,
            }),
            5 => Fault::KillAll,
            6 => Fault::KillOne,
            7 => Fault::FailureRate {
                rate: 0.2,
                duration: length,
            },
            _ => Fault::Restart(Restart::default()),
        };
        spec.plan = spec.plan.clone().at(at, fault);
    }
    if let Err(failure) = run(&spec, false) {
        panic!("{failure}\nspec: {spec:#?}");
    }
});
