//! The runtime doubles: virtual time, the executor and its blocking waiter, fault knobs, the trace.

mod block;
mod clock;
mod executor;
mod faults;
mod trace;

pub use block::SimBlock;
pub use clock::{SimClock, Sleep};
pub use executor::{Sim, SimSpawn, SimThread};
pub use faults::{Episode, Fault, FaultPlan, Faults, Latency, Restart};
pub use trace::Trace;
