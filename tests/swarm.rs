//! Swarm simulation over many seeds (`redis_keeper::sim::swarm`): faults, then a heal; every
//! seed twice with equal trace hashes; every rare transition reached at least once.
//!
//! - `SIM_SEEDS=<n>` runs seeds `SIM_SEED_BASE..SIM_SEED_BASE+n` (default 0..600, ~30 s in debug; CI target 10 000
//!   in release: `scripts/swarm.sh`).
//! - `SIM_SEED=<n>` reruns one seed and prints its trace.
//!
//! A failing seed is printed with what broke; rerun it with `SIM_SEED`.
#![cfg(all(feature = "sim", any(feature = "tokio", feature = "smol")))]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use redis_keeper::sim::swarm::{run, Rare, SwarmReport, SwarmSpec};

/// ~30 s in debug with tokio. With smol alone redis-rs's connections run about five times
/// slower on the simulator, so that build runs fewer seeds in the same time.
#[cfg(feature = "tokio")]
const DEFAULT_SEEDS: u64 = 600;
#[cfg(not(feature = "tokio"))]
const DEFAULT_SEEDS: u64 = 120;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
    )
}

/// Runs `seed` twice; Err names the seed and what broke.
fn run_twice(seed: u64, keep_lines: bool) -> Result<SwarmReport, String> {
    let spec = SwarmSpec::draw(seed);
    let once = |keep| {
        catch_unwind(AssertUnwindSafe(|| run(&spec, keep)))
            .map_err(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("swarm seed {seed} panicked: {msg}; rerun with SIM_SEED={seed}")
            })?
            .map_err(|f| f.to_string())
    };
    let first = once(keep_lines)?;
    let second = once(false)?;
    if first.trace_hash != second.trace_hash {
        return Err(format!(
            "swarm seed {seed} is not deterministic: trace hashes {:016x} and {:016x}; rerun with \
             SIM_SEED={seed}",
            first.trace_hash, second.trace_hash
        ));
    }
    Ok(first)
}

#[test]
fn swarm() {
    if let Some(seed) = env_u64("SIM_SEED") {
        let spec = SwarmSpec::draw(seed);
        println!("{spec:#?}");
        let report = match catch_unwind(AssertUnwindSafe(|| run(&spec, true))) {
            Ok(Ok(r)) => r,
            Ok(Err(f)) => {
                for line in &f.lines {
                    println!("{line}");
                }
                panic!("{f}");
            }
            Err(p) => std::panic::resume_unwind(p),
        };
        for line in &report.lines {
            println!("{line}");
        }
        println!(
            "seed {seed}: {} ops ({} ok, {} failed), healed at {:?}, ended at {:?}, hash {:016x}\n{:#?}",
            report.ops,
            report.ok,
            report.failed,
            report.healed_at,
            report.ended_at,
            report.trace_hash,
            report.rare
        );
        run_twice(seed, false).unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    let n = env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let base = env_u64("SIM_SEED_BASE").unwrap_or(0);
    let started = Instant::now();
    let mut rare = Rare::default();
    let (mut ops, mut failed_ops) = (0u64, 0u64);
    let mut failures = Vec::new();
    for seed in base..base + n {
        match run_twice(seed, false) {
            Ok(r) => {
                rare.add(&r.rare);
                ops += r.ops;
                failed_ops += r.failed;
            }
            Err(e) => {
                eprintln!("{e}");
                failures.push(seed);
            }
        }
    }
    println!(
        "swarm: {n} seeds from {base} (each twice) in {:.1?}: {ops} operations, {failed_ops} failed \
         with typed errors",
        started.elapsed()
    );
    for (name, count) in rare.named() {
        println!("  {name}: {count}");
    }
    assert!(
        failures.is_empty(),
        "{} of {n} seeds failed: {:?} (rerun one with SIM_SEED=<seed>)",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
    if n >= 50 {
        let never: Vec<&str> = rare
            .named()
            .iter()
            .filter(|(_, c)| *c == 0)
            .map(|(name, _)| *name)
            .collect();
        assert!(
            never.is_empty(),
            "rare transitions never reached over {n} seeds: {never:?}"
        );
    }
}
