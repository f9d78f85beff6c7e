//! The `metrics` facade (feature `metrics`): the exposition's counters and gauges recorded into
//! the application's recorder, under the same names and labels. Histograms record each value
//! as it happens (see `Histogram::named`); these are set from a snapshot.

use metrics::{Key, Label, Level, Metadata};

use super::families::{start_time_seconds, FAMILIES, START_TIME};
use super::text::Type;
use crate::stats::ManagerStats;

/// Where the series come from, for recorders that look.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Sets every counter (`absolute`) and gauge (`set`) of `stats` in the installed recorder.
pub(crate) fn record(stats: &ManagerStats) {
    metrics::with_recorder(|recorder| {
        for family in FAMILIES {
            for (db, s) in &stats.databases {
                for (labels, value) in (family.read)(s) {
                    let mut all = vec![Label::new("db", db.clone())];
                    all.extend(labels.iter().map(|(k, v)| Label::new(*k, *v)));
                    let key = Key::from_parts(family.name, all);
                    match family.kind {
                        Type::Counter => recorder
                            .register_counter(&key, &METADATA)
                            .absolute(value as u64),
                        Type::Gauge => recorder.register_gauge(&key, &METADATA).set(value),
                        Type::Histogram => {}
                    }
                }
            }
        }
        recorder
            .register_gauge(&Key::from_name(START_TIME), &METADATA)
            .set(start_time_seconds(stats));
    });
}
