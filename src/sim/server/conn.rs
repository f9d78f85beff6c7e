//! One server-side connection: its session state and its outgoing byte queue ("the wire").

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::task::Waker;
use std::time::Instant;

use tokio::io::ReadBuf;

/// How the server ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// Closed: the client reads EOF, writes fail with `BrokenPipe`.
    Eof,
    /// Reset: reads and writes fail with `ConnectionReset`.
    Reset,
}

/// A transaction being queued (between MULTI and EXEC).
#[derive(Debug, Default)]
pub(super) struct Multi {
    /// The queued requests.
    pub(super) queue: Vec<Vec<Vec<u8>>>,
    /// A command was rejected while queuing: EXEC answers `EXECABORT`.
    pub(super) aborted: bool,
}

/// A client blocked in `BLPOP`/`BRPOP`.
#[derive(Debug)]
pub(super) struct Blocked {
    /// The keyspace it was sent in.
    pub(super) db: usize,
    /// The keys, in the order given.
    pub(super) keys: Vec<Vec<u8>>,
    /// Pops from the right (`BRPOP`).
    pub(super) right: bool,
    /// When it answers nil; `None` blocks until data arrives.
    pub(super) deadline: Option<Instant>,
    /// Blocking order: the longest-blocked client is served first.
    pub(super) seq: u64,
}

/// What a read found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Read {
    /// Bytes were copied.
    Data,
    /// The connection is closed and drained.
    Eof,
    /// The connection was reset.
    Reset,
    /// The next bytes (or the end) become readable at this instant.
    NotDue(Instant),
    /// Nothing is queued.
    Empty,
}

/// A connection as the server sees it.
#[derive(Debug)]
pub(super) struct Conn {
    /// `CLIENT ID`.
    pub(super) id: u64,
    /// The selected keyspace.
    pub(super) db: usize,
    /// Whether the connection has authenticated (or needed not).
    pub(super) authed: bool,
    /// `CLIENT SETNAME`.
    pub(super) name: Option<Vec<u8>>,
    /// The open transaction, if any.
    pub(super) multi: Option<Multi>,
    /// Watched `(db, key)` and the key's deadline when it was watched.
    pub(super) watched: BTreeMap<(usize, Vec<u8>), Option<Instant>>,
    /// A watched key was modified since WATCH.
    pub(super) dirty: bool,
    /// Bytes received and not yet parsed.
    pub(super) input: Vec<u8>,
    /// A blocking pop waiting for data (the connection reads no further command meanwhile).
    pub(super) blocked: Option<Blocked>,
    /// The connection speaks RESP3 (`HELLO 3`): pub/sub frames are pushes.
    pub(super) resp3: bool,
    /// Channels subscribed to.
    pub(super) channels: BTreeSet<Vec<u8>>,
    /// Patterns subscribed to.
    pub(super) patterns: BTreeSet<Vec<u8>>,
    out: VecDeque<(Instant, Vec<u8>)>,
    last_due: Instant,
    end: Option<(Instant, End)>,
    reader: Option<Waker>,
    wake: bool,
}

impl Conn {
    pub(super) fn new(id: u64, authed: bool, now: Instant) -> Self {
        Self {
            id,
            db: 0,
            authed,
            name: None,
            multi: None,
            watched: BTreeMap::new(),
            dirty: false,
            input: Vec::new(),
            blocked: None,
            resp3: false,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            out: VecDeque::new(),
            last_due: now,
            end: None,
            reader: None,
            wake: false,
        }
    }

    /// Whether the server still serves this connection.
    pub(super) fn is_open(&self) -> bool {
        self.end.is_none()
    }

    /// How the server ended it, if it did.
    pub(super) fn end(&self) -> Option<End> {
        self.end.map(|(_, e)| e)
    }

    /// Queues `bytes` to become readable at `due`, never before bytes queued earlier.
    pub(super) fn push(&mut self, due: Instant, bytes: Vec<u8>) {
        let due = due.max(self.last_due);
        self.last_due = due;
        if !bytes.is_empty() {
            self.out.push_back((due, bytes));
        }
        self.wake_reader();
    }

    /// Ends the connection after the bytes already queued have been delivered.
    pub(super) fn close(&mut self, end: End, now: Instant) {
        if self.end.is_none() {
            self.end = Some((now.max(self.last_due), end));
        }
        self.forget_session();
        self.wake_reader();
    }

    /// Ends the connection at once, discarding undelivered bytes (a killed client).
    pub(super) fn kill(&mut self, now: Instant) {
        self.out.clear();
        self.end = Some((now, End::Eof));
        self.forget_session();
        self.wake_reader();
    }

    /// Makes every queued byte (and a pending end) readable at `now` at the latest: what a
    /// healed server does with replies held by a stall or a latency fault.
    pub(super) fn release_held(&mut self, now: Instant) {
        for (due, _) in self.out.iter_mut() {
            *due = (*due).min(now);
        }
        self.last_due = self.last_due.min(now);
        if let Some((at, _)) = self.end.as_mut() {
            *at = (*at).min(now);
        }
        self.wake_reader();
    }

    fn forget_session(&mut self) {
        self.input.clear();
        self.blocked = None;
        self.channels.clear();
        self.patterns.clear();
        self.multi = None;
        self.watched.clear();
    }

    /// Copies readable bytes into `buf`.
    pub(super) fn read(&mut self, now: Instant, buf: &mut ReadBuf<'_>) -> Read {
        self.wake = false;
        let mut copied = false;
        while let Some((due, bytes)) = self.out.front_mut() {
            if *due > now {
                if copied {
                    return Read::Data;
                }
                return Read::NotDue(*due);
            }
            let n = bytes.len().min(buf.remaining());
            buf.put_slice(&bytes[..n]);
            bytes.drain(..n);
            if bytes.is_empty() {
                self.out.pop_front();
            }
            copied = true;
            if buf.remaining() == 0 {
                return Read::Data;
            }
        }
        if copied {
            return Read::Data;
        }
        match self.end {
            None => Read::Empty,
            Some((at, _)) if at > now => Read::NotDue(at),
            Some((_, End::Eof)) => Read::Eof,
            Some((_, End::Reset)) => Read::Reset,
        }
    }

    /// Remembers the task to wake when bytes are queued or the connection ends.
    pub(super) fn set_reader(&mut self, waker: &Waker) {
        match &mut self.reader {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }

    /// Marks the reader to be woken; the server wakes it once its lock is released.
    pub(super) fn wake_reader(&mut self) {
        self.wake = true;
    }

    /// The reader's waker, if something happened that it must look at.
    pub(super) fn take_wake(&mut self) -> Option<Waker> {
        if std::mem::take(&mut self.wake) {
            self.reader.take()
        } else {
            None
        }
    }
}
