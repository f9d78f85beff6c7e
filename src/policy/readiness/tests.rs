//! Table and property tests of the readiness policy.
use super::*;
use proptest::prelude::*;
use ReadinessAction::{GiveUp, Ready, SendProbe, WaitUntil};

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Loading since `t0`, with the first probe sent at `t0 + 2 s`.
fn probing(t0: Instant) -> (Readiness, ProbeToken) {
    let mut r = Readiness::new(ReadinessConfig::default());
    r.on_loading(t0);
    match r.poll(t0 + s(2)) {
        SendProbe(token) => (r, token),
        other => panic!("expected a probe, got {other:?}"),
    }
}

fn loading(since: Instant, probe_in_flight: bool) -> ReadinessState {
    ReadinessState::Loading {
        since,
        deadline: since + s(60),
        probe_in_flight,
    }
}

#[test]
fn defaults_match_the_design() {
    let c = ReadinessConfig::default();
    assert_eq!(
        (c.poll_interval, c.timeout, c.probe_timeout),
        (s(2), s(60), s(5))
    );
}

#[test]
fn ready_transitions() {
    let t0 = Instant::now();
    let mut r = Readiness::new(ReadinessConfig::default());
    assert_eq!(
        (r.poll(t0), r.state(), r.next_deadline()),
        (Ready, ReadinessState::Ready, None)
    );
    r.on_ready();
    assert_eq!(r.state(), ReadinessState::Ready);
    r.on_loading(t0);
    assert_eq!(r.state(), loading(t0, false));
    assert_eq!(r.next_deadline(), Some(t0 + s(2)));
}

#[test]
fn loading_transitions() {
    let t0 = Instant::now();
    let fresh = || {
        let mut r = Readiness::new(ReadinessConfig::default());
        r.on_loading(t0);
        r
    };
    // Poll before the first probe time waits for it.
    for at in [0, 1] {
        assert_eq!(fresh().poll(t0 + s(at)), WaitUntil(t0 + s(2)));
    }
    // Poll at the probe time sends a probe.
    let mut r = fresh();
    assert!(matches!(r.poll(t0 + s(2)), SendProbe(_)));
    assert_eq!(r.state(), loading(t0, true));
    // A second LOADING does not move the deadline or the probe time.
    let mut r = fresh();
    r.on_loading(t0 + s(1));
    assert_eq!(
        (r.state(), r.poll(t0 + s(1))),
        (loading(t0, false), WaitUntil(t0 + s(2)))
    );
    // Success of any command returns to Ready; so does reset.
    let mut r = fresh();
    r.on_ready();
    assert_eq!(r.poll(t0 + s(1)), Ready);
    let mut r = fresh();
    r.reset();
    assert_eq!(r.state(), ReadinessState::Ready);
    // At the deadline: give up, no probe, state TimedOut at the deadline.
    for at in [60, 61, 1000] {
        let mut r = fresh();
        assert_eq!(r.poll(t0 + s(at)), GiveUp);
        assert_eq!(r.state(), ReadinessState::TimedOut { since: t0 + s(60) });
        assert_eq!(r.next_deadline(), None);
    }
}

#[test]
fn probe_transitions() {
    let t0 = Instant::now();
    // A poll while the probe is out waits for its abandonment.
    let (mut r, _) = probing(t0);
    assert_eq!(r.poll(t0 + s(3)), WaitUntil(t0 + s(7)));
    assert_eq!(r.next_deadline(), Some(t0 + s(7)));
    // Ready result: Ready.
    let (mut r, token) = probing(t0);
    assert!(r.on_probe_result(t0 + s(3), token, ProbeOutcome::Ready));
    assert_eq!(
        (r.state(), r.poll(t0 + s(3))),
        (ReadinessState::Ready, Ready)
    );
    // Loading or Failed result: next probe poll_interval after the result.
    for outcome in [ProbeOutcome::Loading, ProbeOutcome::Failed] {
        let (mut r, token) = probing(t0);
        assert!(r.on_probe_result(t0 + s(4), token, outcome));
        assert_eq!(r.state(), loading(t0, false));
        assert_eq!(r.poll(t0 + s(5)), WaitUntil(t0 + s(6)));
        assert!(matches!(r.poll(t0 + s(6)), SendProbe(t) if t != token));
    }
    // Abandonment: the probe counts as ended at sent + probe_timeout.
    let (mut r, token) = probing(t0);
    assert_eq!(r.poll(t0 + s(7)), WaitUntil(t0 + s(9)));
    assert!(
        !r.on_probe_result(t0 + s(8), token, ProbeOutcome::Ready),
        "abandoned"
    );
    assert_eq!(r.state(), loading(t0, false));
    assert!(matches!(r.poll(t0 + s(9)), SendProbe(_)));
    // A result at the abandonment instant is stale too.
    let (mut r, token) = probing(t0);
    assert!(!r.on_probe_result(t0 + s(7), token, ProbeOutcome::Ready));
    // Unknown token: ignored.
    let (mut r, token) = probing(t0);
    let other = ProbeToken(token.0 + 100);
    assert!(!r.on_probe_result(t0 + s(3), other, ProbeOutcome::Ready));
    assert_eq!(r.state(), loading(t0, true));
    // The wait never passes the deadline, and no probe is sent at it.
    let mut r = Readiness::new(ReadinessConfig {
        poll_interval: s(10),
        timeout: s(15),
        ..ReadinessConfig::default()
    });
    r.on_loading(t0);
    let SendProbe(token) = r.poll(t0 + s(10)) else {
        panic!("probe")
    };
    assert!(r.on_probe_result(t0 + s(11), token, ProbeOutcome::Loading));
    assert_eq!(r.poll(t0 + s(11)), WaitUntil(t0 + s(15)));
    assert_eq!(r.poll(t0 + s(15)), GiveUp);
    // A probe still out at the deadline: give up; its late result is stale.
    let mut r = Readiness::new(ReadinessConfig {
        timeout: s(4),
        ..ReadinessConfig::default()
    });
    r.on_loading(t0);
    let SendProbe(token) = r.poll(t0 + s(2)) else {
        panic!("probe")
    };
    assert_eq!(r.poll(t0 + s(3)), WaitUntil(t0 + s(4)));
    assert_eq!(r.poll(t0 + s(4)), GiveUp);
    assert!(!r.on_probe_result(t0 + s(4), token, ProbeOutcome::Ready));
}

#[test]
fn timed_out_transitions() {
    let t0 = Instant::now();
    let timed_out = || {
        let mut r = Readiness::new(ReadinessConfig::default());
        r.on_loading(t0);
        assert_eq!(r.poll(t0 + s(60)), GiveUp);
        r
    };
    let mut r = timed_out();
    assert_eq!(r.poll(t0 + s(100)), GiveUp, "stays timed out");
    let mut r = timed_out();
    r.on_loading(t0 + s(70));
    assert_eq!(r.state(), loading(t0 + s(70), false), "new episode");
    let mut r = timed_out();
    r.reset();
    assert_eq!(r.poll(t0 + s(70)), Ready);
    let mut r = timed_out();
    r.on_ready();
    assert_eq!(r.poll(t0 + s(70)), Ready);
    // Expiry is decided from `now`: a LOADING after the deadline, with no poll in between,
    // starts a new episode.
    let mut r = Readiness::new(ReadinessConfig::default());
    r.on_loading(t0);
    r.on_loading(t0 + s(61));
    assert_eq!(r.state(), loading(t0 + s(61), false));
}

// ---- properties -----------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Event {
    Loading,
    Poll,
    Result(usize, u8),
    Ready,
    Advance(u64),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        1 => Just(Event::Loading),
        4 => Just(Event::Poll),
        3 => (any::<usize>(), 0u8..3).prop_map(|(i, o)| Event::Result(i, o)),
        1 => Just(Event::Ready),
        4 => (0u64..30).prop_map(Event::Advance),
    ]
}

/// What the spec says, tracked independently: the episode's start, the end of the last probe
/// (or the LOADING reply), and the probe out (token, sent at).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Track {
    Ready,
    Loading {
        start: u64,
        last_end: u64,
        out: Option<(ProbeToken, u64)>,
    },
    TimedOut {
        at: u64,
    },
}

/// Applies the spec's time-based facts at `t`: abandonment ends a probe at `sent + probe_timeout`;
/// the episode times out at `start + timeout`.
fn expire(track: &mut Track, t: u64, probe_timeout_ms: u64, timeout_ms: u64) {
    if let Track::Loading {
        start,
        last_end,
        out,
    } = track
    {
        if let Some((_, sent)) = *out {
            if t >= sent + probe_timeout_ms {
                *last_end = sent + probe_timeout_ms;
                *out = None;
            }
        }
        if t >= *start + timeout_ms {
            *track = Track::TimedOut {
                at: *start + timeout_ms,
            };
        }
    }
}

proptest! {
    #[test]
    fn readiness_invariants(
        poll_ms in 1u64..20,
        timeout_ms in 0u64..200,
        probe_timeout_ms in 1u64..40,
        events in prop::collection::vec(event(), 0..150),
    ) {
        let base = Instant::now();
        let ms = |t: u64| base + Duration::from_millis(t);
        let mut r = Readiness::new(ReadinessConfig {
            poll_interval: Duration::from_millis(poll_ms),
            timeout: Duration::from_millis(timeout_ms),
            probe_timeout: Duration::from_millis(probe_timeout_ms),
        });
        let mut track = Track::Ready;
        let mut issued: Vec<ProbeToken> = Vec::new();
        let mut t = 0u64;
        for ev in events {
            expire(&mut track, t, probe_timeout_ms, timeout_ms);
            match ev {
                Event::Advance(d) => t += d,
                Event::Loading => {
                    r.on_loading(ms(t));
                    if !matches!(track, Track::Loading { .. }) {
                        track = Track::Loading { start: t, last_end: t, out: None };
                    }
                }
                Event::Ready => {
                    r.on_ready();
                    track = Track::Ready;
                }
                Event::Poll => match r.poll(ms(t)) {
                    Ready => prop_assert_eq!(track, Track::Ready),
                    GiveUp => {
                        prop_assert!(matches!(track, Track::TimedOut { .. }), "give up only after the deadline: {:?}", track);
                    }
                    WaitUntil(at) => {
                        prop_assert!(at > ms(t), "wait must be in the future");
                        let Track::Loading { start, .. } = track else {
                            return Err(TestCaseError::fail(format!("wait outside loading: {track:?}")));
                        };
                        prop_assert!(at <= ms(start + timeout_ms), "wait past the deadline");
                    }
                    SendProbe(token) => {
                        let Track::Loading { start, last_end, out } = &mut track else {
                            return Err(TestCaseError::fail(format!("probe outside loading: {track:?}")));
                        };
                        prop_assert!(out.is_none(), "second probe in flight");
                        prop_assert!(t < *start + timeout_ms, "probe at or after the deadline");
                        prop_assert!(t >= *last_end + poll_ms, "probe {t} too soon after {last_end}");
                        prop_assert!(!issued.contains(&token), "token reused");
                        issued.push(token);
                        *out = Some((token, t));
                    }
                },
                Event::Result(i, o) if !issued.is_empty() => {
                    let token = issued[i % issued.len()];
                    let outcome = [ProbeOutcome::Ready, ProbeOutcome::Loading, ProbeOutcome::Failed][o as usize];
                    r.tick(ms(t));
                    let before = r.state();
                    let applied = r.on_probe_result(ms(t), token, outcome);
                    let current = matches!(track, Track::Loading { out: Some((tok, _)), .. } if tok == token);
                    prop_assert_eq!(applied, current);
                    if !current {
                        prop_assert_eq!(r.state(), before, "stale token changed the state");
                    } else if outcome == ProbeOutcome::Ready {
                        track = Track::Ready;
                    } else if let Track::Loading { last_end, out, .. } = &mut track {
                        *last_end = t;
                        *out = None;
                    }
                }
                Event::Result(..) => {}
            }
            // The reported state agrees with the tracked facts once expiries are applied.
            expire(&mut track, t, probe_timeout_ms, timeout_ms);
            r.tick(ms(t));
            match (track, r.state()) {
                (Track::Ready, ReadinessState::Ready) => prop_assert_eq!(r.next_deadline(), None),
                (Track::TimedOut { at }, ReadinessState::TimedOut { since }) => {
                    prop_assert_eq!(since, ms(at));
                    prop_assert_eq!(r.next_deadline(), None);
                }
                (Track::Loading { start, out, .. }, ReadinessState::Loading { since, deadline, probe_in_flight }) => {
                    prop_assert_eq!((since, deadline), (ms(start), ms(start + timeout_ms)));
                    prop_assert_eq!(probe_in_flight, out.is_some());
                    let next = r.next_deadline().expect("loading has a deadline");
                    // Past only when a probe is overdue (nobody polled yet): "act now".
                    prop_assert!(next <= deadline);
                    prop_assert!(next > ms(t) || !probe_in_flight);
                }
                (track, state) => prop_assert!(false, "tracked {:?}, reported {:?}", track, state),
            }
        }
    }
}

#[test]
fn config_returns_the_configuration_in_force() {
    let c = ReadinessConfig {
        poll_interval: Duration::from_millis(250),
        timeout: Duration::from_secs(9),
        probe_timeout: Duration::from_secs(1),
    };
    assert_eq!(Readiness::new(c.clone()).config(), &c);
}
