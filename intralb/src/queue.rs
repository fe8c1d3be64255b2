//! The pool-wide queue's discipline: which waiting request gets the next free worker, which is
//! refused, and when to come back.
//!
//! - **CoDel** (as in folly's `Codel`, after Nichols and Jacobson): the queue *stands* when,
//!   each time a worker was granted during an interval (100 ms), the queue's delay exceeded
//!   `queue_target`; a request served at once counts as a delay of zero, so a queue that empties
//!   now and then never stands. While it stands, a request that has waited more than twice the
//!   target is answered `503`: the queue absorbs bursts, but a standing delay lasts one or two
//!   intervals at most; a queue that fills up stands at once, and so does one that stood
//!   lately (see [`MEMORY`]) as soon as it builds up again. folly samples the served request's wait; served newest first (below),
//!   that wait is short while old requests still stand in line, so here the sample is the longer
//!   of the served request's wait and the oldest one left's.
//! - **Adaptive LIFO** (Facebook, "Fail at Scale"): while the queue stands the newest request is
//!   served first, because its client is the one most likely still waiting; first in, first out
//!   otherwise.
//! - **Priorities**: [`Priority::Critical`] first, [`Priority::Sheddable`] last; see
//!   [`Queue::admit`] for who may take a place. Each priority has its own CoDel state: critical
//!   requests served at once must not hide that the normal ones stand in line.
//! - **`Retry-After`**: the time the backlog takes to drain at the rate requests were granted a
//!   worker lately, in whole seconds, at least one, jittered.
//!
//! Plain data, driven by the pool under its lock: no task, no clock of its own.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::priority::Priority;
use crate::worker::Worker;

/// How long CoDel watches the shortest wait before it decides whether the queue stands.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);

/// How long a queue that stood and stands no more counts as having stood *lately*: if it
/// builds up again meanwhile (its oldest request waits past the target), it stands again at
/// once instead of an interval later. The queue of a sustained overload empties now and then
/// (the clients pause, or every request left waiting was answered); without this memory, the
/// requests queued after each such moment were served first come, first served, until the
/// queue filled or the next interval ended: the longest waits of the run. Bursts that never
/// made the queue stand are not affected. RFC 8289 (CoDel), section 5.4, resumes dropping the
/// same way when it re-enters within 16 intervals.
pub(crate) const MEMORY: Duration = INTERVAL.saturating_mul(16);

/// The longest `Retry-After` given, in seconds.
const MOST_RETRY_AFTER: u64 = 60;

/// What a waiting request is sent.
#[derive(Debug)]
pub(crate) enum Grant {
    /// A worker: the request runs now.
    Worker(Arc<Worker>),
    /// Refused: a critical request took its place.
    Shed,
}

/// A request waiting for a worker.
struct Waiter {
    tx: oneshot::Sender<Grant>,
    since: Instant,
}

/// What [`Queue::admit`] decided.
#[derive(Debug)]
pub(crate) enum Admit {
    /// The request may wait.
    Wait,
    /// The request may wait in the place of this one, which must be told it was shed.
    Displace(oneshot::Sender<Grant>),
    /// No place for it.
    Refuse,
}

/// The waiting requests by priority, CoDel's state and the drain-rate meter.
pub(crate) struct Queue {
    /// By [`Priority::rank`].
    classes: [VecDeque<Waiter>; Priority::ALL.len()],
    /// Of `classes`, the waiters still waiting (the others gave up; skipped when reached).
    live: [usize; Priority::ALL.len()],
    /// Waiters that gave up but are still in `classes`.
    dead: usize,
    /// By [`Priority::rank`]: each class stands or not on its own waits, so that critical
    /// requests served at once do not hide a normal queue that stands.
    codel: [Codel; Priority::ALL.len()],
    meter: Meter,
    /// When a worker was last granted to anyone.
    last_grant: Option<Instant>,
}

impl Queue {
    /// `target`: CoDel's target wait; zero turns CoDel (and LIFO) off.
    pub(crate) fn new(target: Duration, now: Instant) -> Self {
        Queue {
            classes: Default::default(),
            live: [0; Priority::ALL.len()],
            dead: 0,
            codel: [(); Priority::ALL.len()].map(|()| Codel {
                target,
                interval_end: now + INTERVAL,
                min_delay: None,
                standing: false,
                stood_until: None,
            }),
            meter: Meter {
                window_start: now,
                granted_at_start: 0,
                granted: 0,
                rate: 0.0,
            },
            last_grant: None,
        }
    }

    /// Requests waiting.
    pub(crate) fn len(&self) -> usize {
        self.live.iter().sum()
    }

    /// Whether nobody waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.live == [0; Priority::ALL.len()]
    }

    /// Requests of `priority` waiting.
    pub(crate) fn len_of(&self, priority: Priority) -> usize {
        self.live[priority.rank()]
    }

    /// Whether the queue of `priority` stands (CoDel), as of `now`.
    pub(crate) fn standing(&mut self, priority: Priority, now: Instant) -> bool {
        let rank = priority.rank();
        let before = self.codel[rank].standing;
        if self.codel[rank].roll(now) {
            self.began_standing(priority, now, "an interval's waits");
        } else if before && !self.codel[rank].standing {
            tracing::debug!(?priority, "queue stands no more");
        }
        if !self.codel[rank].standing
            && self.codel[rank].stood_lately(now)
            && self.oldest_wait(priority, now) > self.codel[rank].target
            && self.moving(priority)
            && self.codel[rank].stand(now)
        {
            // It stood a moment ago and builds up again: it stands again now, not an interval
            // later (RFC 8289's CoDel resumes dropping the same way). Not if nobody got a
            // worker meanwhile: see `filled`.
            self.began_standing(priority, now, "stood lately");
        }
        self.codel[rank].standing
    }

    /// The queue of `priority` began to stand (`why`): logged, and swept.
    fn began_standing(&mut self, priority: Priority, now: Instant, why: &'static str) {
        tracing::debug!(
            ?priority,
            why,
            waiting = self.len_of(priority),
            "queue stands"
        );
        self.sweep(priority, now);
    }

    /// Records the queue's delay for `priority` as a grant sees it.
    fn sample(&mut self, priority: Priority, now: Instant, delay: Duration) {
        self.standing(priority, now);
        let codel = &mut self.codel[priority.rank()];
        codel.min_delay = Some(codel.min_delay.map_or(delay, |min| min.min(delay)));
    }

    /// The queue of `priority` stands: those who have waited more than twice the target are
    /// answered `503` now, rather than each at its own check.
    fn sweep(&mut self, priority: Priority, now: Instant) {
        let limit = self.codel[priority.rank()].target * 2;
        let class = &mut self.classes[priority.rank()];
        while let Some(oldest) = class.front() {
            if now.saturating_duration_since(oldest.since) <= limit {
                break;
            }
            let waiter = class.pop_front().expect("checked above");
            if waiter.tx.is_closed() {
                self.dead -= 1;
            } else {
                self.live[priority.rank()] -= 1;
                let _ = waiter.tx.send(Grant::Shed);
            }
        }
    }

    /// Every place is taken: a class whose oldest request saw others get a worker since it
    /// came stands (a full queue that moves is as clear a sign as an interval's waits, and comes
    /// sooner when an overload begins). Not one that nobody left since its oldest came: its
    /// workers are all stuck (a database lock, say), which says nothing of the queue, and its
    /// requests keep waiting (up to their deadline). Not the critical class either: it is served
    /// first, so a full queue says nothing of its waits.
    fn filled(&mut self, now: Instant) {
        for priority in [Priority::Normal, Priority::Sheddable] {
            if self.moving(priority) && self.codel[priority.rank()].stand(now) {
                self.began_standing(priority, now, "full");
            }
        }
    }

    /// Whether anyone got a worker since the oldest request of `priority` still in the queue
    /// came.
    fn moving(&self, priority: Priority) -> bool {
        let oldest = self.classes[priority.rank()].front();
        match (oldest, self.last_grant) {
            (Some(oldest), Some(granted)) => granted > oldest.since,
            _ => false,
        }
    }

    /// The concurrency limit was cut (`adaptive`): as clear a sign as a full queue, so the
    /// classes waiting stand at once (see `filled`).
    pub(crate) fn limit_cut(&mut self, now: Instant) {
        self.filled(now);
    }

    /// A request of `priority` got an idle worker at once: a wait of zero.
    pub(crate) fn granted_at_once(&mut self, priority: Priority, now: Instant) {
        self.meter.granted += 1;
        self.last_grant = Some(now);
        let codel = &self.codel[priority.rank()];
        // The common case, cheaply: this interval already has its zero.
        let known = codel.min_delay == Some(Duration::ZERO) && now < codel.interval_end;
        if codel.enabled() && !known {
            self.sample(priority, now, Duration::ZERO);
        }
    }

    /// Whether a request of `priority` may wait, with `capacity` places in all.
    ///
    /// A `Normal` request may take any free place; a `Sheddable` one only while fewer than half
    /// the places are taken, and none while the queue stands; a `Critical` one any free place,
    /// and when none is free, the place of the oldest waiting `Sheddable` request, else of the
    /// oldest `Normal` one. A full queue stands (CoDel), which frees the places of those who
    /// waited more than twice the target.
    pub(crate) fn admit(&mut self, priority: Priority, capacity: usize, now: Instant) -> Admit {
        for class in Priority::ALL {
            if self.standing(class, now) {
                // Those past twice the target are answered now, not at their own check (a
                // timer, which fires up to a millisecond late).
                self.sweep(class, now);
            }
        }
        let len = self.len();
        match priority {
            Priority::Sheddable
                if self.standing(Priority::Normal, now)
                    || self.standing(Priority::Sheddable, now)
                    || len >= capacity / 2 =>
            {
                Admit::Refuse
            }
            _ if len < capacity => Admit::Wait,
            _ => {
                self.filled(now);
                if self.len() < capacity {
                    // Those who waited too long are gone: there is room now.
                    return Admit::Wait;
                }
                if priority != Priority::Critical {
                    return Admit::Refuse;
                }
                [Priority::Sheddable, Priority::Normal]
                    .into_iter()
                    .find_map(|lower| self.pop(lower, false))
                    .map_or(Admit::Refuse, |waiter| Admit::Displace(waiter.tx))
            }
        }
    }

    /// Adds a waiter; it receives a [`Grant`] on `rx` (or a closed channel if the pool closes).
    pub(crate) fn push(&mut self, priority: Priority, now: Instant) -> oneshot::Receiver<Grant> {
        let (tx, rx) = oneshot::channel();
        self.classes[priority.rank()].push_back(Waiter { tx, since: now });
        self.live[priority.rank()] += 1;
        rx
    }

    /// A waiter of `priority` gave up while still in the queue (nobody sent it anything).
    pub(crate) fn leave(&mut self, priority: Priority) {
        self.live[priority.rank()] -= 1;
        self.dead += 1;
        // Those who gave up leave their entry behind; sweep when they outnumber the rest.
        if self.dead > 64 && self.dead > self.len() {
            for class in &mut self.classes {
                class.retain(|waiter| !waiter.tx.is_closed());
            }
            self.dead = 0;
        }
    }

    /// The waiter to give a free worker to: the most important class first; within it the
    /// newest while the queue stands, else the oldest. While it stands, waiters found to have
    /// waited more than twice the target are answered `503` on the way.
    pub(crate) fn next(&mut self, now: Instant) -> Option<oneshot::Sender<Grant>> {
        for priority in Priority::ALL {
            loop {
                let standing = self.standing(priority, now);
                if standing {
                    // As in `admit`.
                    self.sweep(priority, now);
                }
                let Some(waiter) = self.pop(priority, standing) else {
                    break;
                };
                let delay = now.saturating_duration_since(waiter.since);
                if self.codel[priority.rank()].enabled() {
                    // What stands is the oldest wait left, whichever request is served: served
                    // newest first, the served request's own wait would say the queue is short
                    // while it is not.
                    let standing_delay = self.oldest_wait(priority, now).max(delay);
                    self.sample(priority, now, standing_delay);
                }
                let codel = &self.codel[priority.rank()];
                if codel.sloughs(delay) {
                    let _ = waiter.tx.send(Grant::Shed);
                    continue;
                }
                self.meter.granted += 1;
                self.last_grant = Some(now);
                return Some(waiter.tx);
            }
        }
        None
    }

    /// Whether a request of `priority` that has waited since `since` is to be answered `503`
    /// now (CoDel).
    pub(crate) fn sloughs(&mut self, priority: Priority, since: Instant, now: Instant) -> bool {
        self.standing(priority, now)
            && self.codel[priority.rank()].sloughs(now.saturating_duration_since(since))
    }

    /// When a request waiting since `since` is next to be checked by [`sloughs`](Self::sloughs):
    /// once it has waited twice the target, and then when CoDel next decides; `None` without
    /// CoDel.
    pub(crate) fn next_check(
        &self,
        priority: Priority,
        since: Instant,
        now: Instant,
    ) -> Option<Instant> {
        let codel = &self.codel[priority.rank()];
        if !codel.enabled() {
            return None;
        }
        let old = since + codel.target * 2 + Duration::from_micros(1);
        Some(if old > now {
            old
        } else {
            codel.interval_end.max(now + Duration::from_micros(1))
        })
    }

    /// Everyone waiting (the pool closes: dropping them tells the waiters).
    pub(crate) fn clear(&mut self) {
        for class in &mut self.classes {
            class.clear();
        }
        self.live = [0; Priority::ALL.len()];
        self.dead = 0;
    }

    /// `Retry-After` for a refused request, in whole seconds: how long the requests waiting now
    /// (and this one) take to get a worker at the rate workers were granted lately; at least 1, at
    /// most 60, plus up to half as much again at random (at least a second's spread), so that the
    /// clients refused together do not all come back together.
    pub(crate) fn retry_after(&mut self, now: Instant) -> u64 {
        let rate = self.meter.rate(now);
        let backlog = (self.len() + 1) as f64;
        let secs = if rate > 0.0 {
            (backlog / rate).ceil().clamp(1.0, MOST_RETRY_AFTER as f64) as u64
        } else {
            MOST_RETRY_AFTER
        };
        secs + jitter(secs / 2)
    }

    /// How long the oldest request of `priority` still waiting has waited; zero if none waits.
    fn oldest_wait(&mut self, priority: Priority, now: Instant) -> Duration {
        let class = &mut self.classes[priority.rank()];
        while class.front().is_some_and(|waiter| waiter.tx.is_closed()) {
            class.pop_front();
            self.dead -= 1;
        }
        class.front().map_or(Duration::ZERO, |waiter| {
            now.saturating_duration_since(waiter.since)
        })
    }

    /// The live waiter of `priority` at the back (`newest`) or front, skipping those gone.
    fn pop(&mut self, priority: Priority, newest: bool) -> Option<Waiter> {
        let class = &mut self.classes[priority.rank()];
        while let Some(waiter) = if newest {
            class.pop_back()
        } else {
            class.pop_front()
        } {
            if waiter.tx.is_closed() {
                self.dead -= 1;
                continue;
            }
            self.live[priority.rank()] -= 1;
            return Some(waiter);
        }
        None
    }
}

/// A random whole number of seconds from 0 to `at_least_one.max(1)`.
pub(crate) fn jitter(spread: u64) -> u64 {
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    random % (spread.max(1) + 1)
}

/// CoDel's state (see the module docs).
struct Codel {
    /// Zero: off.
    target: Duration,
    interval_end: Instant,
    /// The shortest wait sampled in the current interval.
    min_delay: Option<Duration>,
    standing: bool,
    /// Until when the queue counts as having stood lately (see [`MEMORY`]).
    stood_until: Option<Instant>,
}

impl Codel {
    fn enabled(&self) -> bool {
        !self.target.is_zero()
    }

    /// Decides, once an interval has passed, whether the queue stands: its shortest wait
    /// exceeded the target. An interval in which nobody got a worker changes nothing: workers
    /// that are all starting (or all stuck) say nothing about the queue until one serves.
    /// Returns whether the queue began to stand.
    fn roll(&mut self, now: Instant) -> bool {
        if now < self.interval_end || !self.enabled() {
            return false;
        }
        let before = self.standing;
        if let Some(delay) = self.min_delay {
            self.standing = delay > self.target;
        }
        if before && !self.standing {
            self.stood_until = Some(now + MEMORY);
        }
        self.min_delay = None;
        self.interval_end = now + INTERVAL;
        self.standing && !before
    }

    /// Whether the queue stood a moment ago (within [`MEMORY`]).
    fn stood_lately(&self, now: Instant) -> bool {
        self.enabled() && self.stood_until.is_some_and(|until| now < until)
    }

    /// The queue filled up: it stands from now on, at least for an interval. Returns whether it
    /// began to stand.
    fn stand(&mut self, now: Instant) -> bool {
        if !self.enabled() {
            return false;
        }
        let before = self.standing;
        self.standing = true;
        self.min_delay = None;
        self.interval_end = now + INTERVAL;
        !before
    }

    /// While standing, a wait over twice the target is answered `503`.
    fn sloughs(&self, delay: Duration) -> bool {
        self.standing && delay > self.target * 2
    }
}

/// Workers granted per second, measured over windows of at least a second.
struct Meter {
    window_start: Instant,
    granted_at_start: u64,
    granted: u64,
    /// Over the last complete window.
    rate: f64,
}

impl Meter {
    fn rate(&mut self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.window_start);
        let granted = (self.granted - self.granted_at_start) as f64;
        if elapsed >= Duration::from_secs(1) {
            self.rate = granted / elapsed.as_secs_f64();
            self.window_start = now;
            self.granted_at_start = self.granted;
        } else if self.rate == 0.0 && !elapsed.is_zero() {
            // The first window is not over yet: what it has seen so far.
            return granted / elapsed.as_secs_f64();
        }
        self.rate
    }
}

#[cfg(test)]
mod tests;
