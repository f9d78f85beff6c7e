//! A subscriber's bounded message buffer: the connection's driver pushes without ever waiting
//! (a full buffer drops the message and counts it); the [`Subscriber`](super::Subscriber)'s
//! stream takes from the front.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// The buffer between a subscriber's connection and its stream.
#[derive(Debug)]
pub(super) struct Inbox {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<redis::Msg>,
    capacity: usize,
    /// The stream's task, waiting for a message.
    reader: Option<Waker>,
    /// No message will come any more: the stream ends once the queue is empty.
    closed: bool,
}

impl Inbox {
    /// An empty buffer for up to `capacity` messages (at least one).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                capacity: capacity.max(1),
                reader: None,
                closed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `msg`; false (the message is dropped) when the buffer is full.
    pub(super) fn push(&self, msg: redis::Msg) -> bool {
        let waker = {
            let mut st = self.lock();
            if st.queue.len() >= st.capacity {
                return false;
            }
            st.queue.push_back(msg);
            st.reader.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Ends the stream after the messages already queued.
    pub(super) fn close(&self) {
        let waker = {
            let mut st = self.lock();
            st.closed = true;
            st.reader.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The next message; `Ready(None)` once closed and drained.
    pub(super) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<redis::Msg>> {
        let mut st = self.lock();
        if let Some(msg) = st.queue.pop_front() {
            return Poll::Ready(Some(msg));
        }
        if st.closed {
            return Poll::Ready(None);
        }
        match &st.reader {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.reader = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Messages waiting to be read.
    pub(super) fn len(&self) -> usize {
        self.lock().queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(payload: &str) -> redis::Msg {
        let value = redis::Value::Array(vec![
            redis::Value::BulkString(b"message".to_vec()),
            redis::Value::BulkString(b"c".to_vec()),
            redis::Value::BulkString(payload.as_bytes().to_vec()),
        ]);
        redis::Msg::from_owned_value(value).expect("a message")
    }

    #[test]
    fn a_full_inbox_drops_and_a_closed_one_drains_then_ends() {
        let inbox = Inbox::new(2);
        assert!(inbox.push(msg("a")) && inbox.push(msg("b")));
        assert!(!inbox.push(msg("c")), "full: dropped, never waits");
        assert_eq!(inbox.len(), 2);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let next = |cx: &mut Context<'_>| match inbox.poll_next(cx) {
            Poll::Ready(Some(m)) => Some(Some(m.get_payload::<String>().unwrap())),
            Poll::Ready(None) => Some(None),
            Poll::Pending => None,
        };
        assert_eq!(next(&mut cx), Some(Some("a".into())));
        inbox.close();
        assert_eq!(
            next(&mut cx),
            Some(Some("b".into())),
            "queued messages survive the close"
        );
        assert_eq!(next(&mut cx), Some(None));
        let open = Inbox::new(1);
        assert!(open.poll_next(&mut cx).is_pending());
    }
}
