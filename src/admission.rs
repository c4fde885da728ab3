//! Admission to the model: a bounded, first-come queue in front of generation. At most
//! `slots` generations run at once (one for the embedded model, which decodes one request at a
//! time; more for an LLM server); up to `capacity` more wait in line, each told its place; the
//! next one is turned away at once with an estimate of when to come back. A waiting ask whose
//! client has gone, or whose deadline has passed, leaves the line.
//!
//! Sans-IO apart from the clock and the condition variable: callers run on blocking threads.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::warehouse::Cancel;

/// Why an ask was not let through to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The line is full: come back after about `retry_after`.
    #[error(
        "the model is busy: {waiting} questions are already waiting for it; try again in about {} s",
        retry_after.as_secs()
    )]
    Full { waiting: usize, retry_after: Duration },
    /// The ask was cancelled (its client went away) while it waited.
    #[error("the question was cancelled while it waited for the model")]
    Cancelled,
    /// The ask's deadline passed while it waited: come back after about `retry_after`.
    #[error("the question waited {} s for the model, longer than [llm] queue_wait_s allows; try again in about {} s", waited.as_secs(), retry_after.as_secs())]
    Deadline { waited: Duration, retry_after: Duration },
}

/// How many may generate at once and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub slots: usize,
    pub capacity: usize,
}

/// The line in front of the model.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    line: Mutex<Line>,
    moved: Condvar,
}

#[derive(Debug, Default)]
struct Line {
    /// Tickets waiting, first in front.
    waiting: VecDeque<u64>,
    running: usize,
    next_ticket: u64,
    /// A running average of how long one turn holds a slot, for `Retry-After`.
    mean_turn: Option<Duration>,
}

/// A slot held on the model; given back when dropped.
#[derive(Debug)]
pub struct Turn<'a> {
    admission: &'a Admission,
    started: Instant,
}

/// How often a waiting ask looks at its cancel flag and deadline.
const POLL: Duration = Duration::from_millis(200);

impl Admission {
    pub fn new(limits: Limits) -> Admission {
        let limits = Limits { slots: limits.slots.max(1), capacity: limits.capacity };
        Admission { limits, line: Mutex::new(Line::default()), moved: Condvar::new() }
    }

    /// Asks waiting and generations running now.
    pub fn load(&self) -> (usize, usize) {
        let line = self.lock();
        (line.waiting.len(), line.running)
    }

    /// Waits for a turn on the model. `position` is told the ask's place in line (1 is next)
    /// each time it changes, never while a turn is free at once. Gives up when `cancel` is set
    /// or `deadline` passes.
    pub fn enter(
        &self,
        cancel: &Cancel,
        deadline: Option<Instant>,
        position: &dyn Fn(usize),
    ) -> Result<Turn<'_>, Refused> {
        let mut line = self.lock();
        if line.waiting.is_empty() && line.running < self.limits.slots {
            line.running += 1;
            return Ok(Turn { admission: self, started: Instant::now() });
        }
        if line.waiting.len() >= self.limits.capacity {
            let waiting = line.waiting.len();
            return Err(Refused::Full { waiting, retry_after: self.retry_after(&line) });
        }
        let ticket = line.next_ticket;
        line.next_ticket += 1;
        line.waiting.push_back(ticket);
        let entered = Instant::now();
        let mut told = 0;
        loop {
            let place = line.waiting.iter().position(|t| *t == ticket).map_or(1, |i| i + 1);
            if place == 1 && line.running < self.limits.slots {
                line.waiting.pop_front();
                line.running += 1;
                // The next in line moves up a place.
                self.moved.notify_all();
                return Ok(Turn { admission: self, started: Instant::now() });
            }
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            if cancel.is_cancelled() || expired {
                line.waiting.retain(|t| *t != ticket);
                self.moved.notify_all();
                return Err(if expired {
                    Refused::Deadline { waited: entered.elapsed(), retry_after: self.retry_after(&line) }
                } else {
                    Refused::Cancelled
                });
            }
            if place != told {
                told = place;
                drop(line);
                position(place);
                line = self.lock();
                continue;
            }
            line = self
                .moved
                .wait_timeout(line, POLL)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// About when a place in line frees up: the turns ahead times the mean turn, over the slots.
    fn retry_after(&self, line: &Line) -> Duration {
        let turn = line.mean_turn.unwrap_or(Duration::from_secs(10));
        let ahead = (line.waiting.len() + line.running) as u32;
        (turn * ahead / self.limits.slots as u32).max(Duration::from_secs(1))
    }

    fn lock(&self) -> MutexGuard<'_, Line> {
        // A panic while holding the lock leaves the counts as they were: keep going.
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let held = self.started.elapsed();
        let mut line = self.admission.lock();
        line.running = line.running.saturating_sub(1);
        line.mean_turn = Some(match line.mean_turn {
            Some(mean) => (mean * 3 + held) / 4,
            None => held,
        });
        drop(line);
        self.admission.moved.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{mpsc, Arc};

    use super::*;

    fn admission(slots: usize, capacity: usize) -> Arc<Admission> {
        Arc::new(Admission::new(Limits { slots, capacity }))
    }

    #[test]
    fn a_free_slot_is_taken_at_once_and_given_back_on_drop() {
        let gate = admission(1, 0);
        let never = |_: usize| panic!("no place in line is told when a slot is free");
        let turn = gate.enter(&Cancel::new(), None, &never).expect("free slot");
        assert_eq!(gate.load(), (0, 1));
        drop(turn);
        assert_eq!(gate.load(), (0, 0));
        gate.enter(&Cancel::new(), None, &never).expect("free again");
    }

    #[test]
    fn a_full_line_turns_the_next_away_with_a_retry_estimate() {
        let gate = admission(1, 0);
        let _turn = gate.enter(&Cancel::new(), None, &|_| {}).expect("free slot");
        match gate.enter(&Cancel::new(), None, &|_| {}) {
            Err(Refused::Full { waiting: 0, retry_after }) => assert!(retry_after >= Duration::from_secs(1)),
            other => panic!("want Full, got {other:?}"),
        };
    }

    #[test]
    fn waiters_are_served_first_come_and_told_their_place() {
        let gate = admission(1, 4);
        let first = gate.enter(&Cancel::new(), None, &|_| {}).expect("free slot");
        let (served, order) = mpsc::channel();
        let mut waiters = Vec::new();
        for name in 0..3 {
            let (gate, served) = (gate.clone(), served.clone());
            let (placed, told) = mpsc::channel();
            waiters.push(std::thread::spawn(move || {
                let turn = gate
                    .enter(&Cancel::new(), None, &|p| {
                        let _ = placed.send(p);
                    })
                    .expect("a turn");
                served.send(name).expect("served");
                drop(turn);
            }));
            // Each joins the line before the next, so the order is known.
            assert_eq!(told.recv_timeout(Duration::from_secs(5)), Ok(name + 1));
        }
        assert_eq!(gate.load(), (3, 1));
        drop(first);
        let order: Vec<usize> =
            (0..3).map(|_| order.recv_timeout(Duration::from_secs(5)).expect("served")).collect();
        assert_eq!(order, [0, 1, 2]);
        for waiter in waiters {
            waiter.join().expect("waiter");
        }
        assert_eq!(gate.load(), (0, 0));
    }

    #[test]
    fn a_cancelled_or_expired_waiter_leaves_the_line() {
        let gate = admission(1, 2);
        let _turn = gate.enter(&Cancel::new(), None, &|_| {}).expect("free slot");
        let cancel = Cancel::new();
        let (waiting, cancelled) = (gate.clone(), cancel.clone());
        let waiter = std::thread::spawn(move || waiting.enter(&cancelled, None, &|_| {}).map(|_| ()));
        while gate.load().0 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        cancel.cancel();
        assert_eq!(waiter.join().expect("waiter"), Err(Refused::Cancelled));
        assert_eq!(gate.load(), (0, 1));
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(matches!(gate.enter(&Cancel::new(), Some(soon), &|_| {}), Err(Refused::Deadline { .. })));
        assert_eq!(gate.load(), (0, 1));
    }
}
