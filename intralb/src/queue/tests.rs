//! The discipline's pieces on their own; `pool/tests.rs` drives it through the pool.

use std::time::Duration;

use tokio::time::Instant;

use super::{Admit, Queue, INTERVAL};
use crate::priority::Priority;

#[test]
fn a_queue_stands_only_when_its_shortest_wait_in_an_interval_exceeded_the_target() {
    let start = Instant::now();
    let mut queue = Queue::new(Duration::from_millis(5), start);
    // Waits of 20 ms and 8 ms in one interval: the shortest, 8 ms, exceeds 5 ms.
    let _waiting = [
        queue.push(Priority::Normal, start),
        queue.push(Priority::Normal, start),
    ];
    assert!(queue.next(start + Duration::from_millis(20)).is_some());
    assert!(queue.next(start + Duration::from_millis(8)).is_some());
    assert!(!queue.standing(Priority::Normal, start + Duration::from_millis(50)));
    assert!(queue.standing(Priority::Normal, start + INTERVAL));
    // One request served at once in the next interval: it stands no more after it.
    queue.granted_at_once(
        Priority::Normal,
        start + INTERVAL + Duration::from_millis(1),
    );
    assert!(queue.standing(
        Priority::Normal,
        start + INTERVAL * 2 - Duration::from_millis(1)
    ));
    assert!(!queue.standing(
        Priority::Normal,
        start + INTERVAL * 2 + Duration::from_millis(2)
    ));
}

#[test]
fn sheddable_requests_take_half_the_queue_and_none_of_a_standing_one() {
    let now = Instant::now();
    let mut queue = Queue::new(Duration::from_millis(5), now);
    assert!(matches!(
        queue.admit(Priority::Sheddable, 4, now),
        Admit::Wait
    ));
    let _a = queue.push(Priority::Sheddable, now);
    let _b = queue.push(Priority::Normal, now);
    assert!(matches!(
        queue.admit(Priority::Sheddable, 4, now),
        Admit::Refuse
    ));
    assert!(matches!(queue.admit(Priority::Normal, 4, now), Admit::Wait));
    // Standing (the shortest wait in an interval was 50 ms): refused even with room.
    assert!(queue.next(now + Duration::from_millis(50)).is_some());
    let later = now + INTERVAL;
    assert!(queue.standing(Priority::Normal, later));
    assert!(matches!(
        queue.admit(Priority::Sheddable, 100, later),
        Admit::Refuse
    ));
}

#[test]
fn those_who_gave_up_are_swept_so_the_queue_stays_bounded() {
    let now = Instant::now();
    let mut queue = Queue::new(Duration::ZERO, now);
    for _ in 0..10_000 {
        drop(queue.push(Priority::Normal, now));
        queue.leave(Priority::Normal);
    }
    assert_eq!(queue.len(), 0);
    let entries: usize = queue.classes.iter().map(|class| class.len()).sum();
    assert!(entries <= 65, "{entries} entries left behind");
    assert!(queue.next(now).is_none());
}

#[test]
fn critical_requests_served_at_once_do_not_hide_a_normal_queue_that_stands() {
    let start = Instant::now();
    let mut queue = Queue::new(Duration::from_millis(5), start);
    let _normal = queue.push(Priority::Normal, start);
    queue.granted_at_once(Priority::Critical, start + Duration::from_millis(10));
    // The normal request got a worker after 40 ms; critical ones got theirs at once.
    let _critical = queue.push(Priority::Critical, start + Duration::from_millis(40));
    assert!(queue.next(start + Duration::from_millis(40)).is_some());
    assert!(queue.next(start + Duration::from_millis(40)).is_some());
    let later = start + INTERVAL;
    assert!(queue.standing(Priority::Normal, later));
    assert!(!queue.standing(Priority::Critical, later));
}

#[test]
fn a_full_queue_stands_only_if_it_moves() {
    let start = Instant::now();
    let mut queue = Queue::new(Duration::from_millis(5), start);
    let _first = [
        queue.push(Priority::Normal, start),
        queue.push(Priority::Normal, start),
    ];
    // Full, and nobody got a worker since they came (every worker stuck): they keep waiting.
    let later = start + Duration::from_millis(50);
    assert!(matches!(
        queue.admit(Priority::Normal, 2, later),
        Admit::Refuse
    ));
    assert_eq!(queue.len(), 2);
    assert!(!queue.standing(Priority::Normal, later));
    // One gets a worker, another comes: full again, and moving: it stands, and the one left
    // from the start (70 ms, over twice the target) is shed, which makes room.
    assert!(queue.next(start + Duration::from_millis(60)).is_some());
    let _second = queue.push(Priority::Normal, start + Duration::from_millis(61));
    let full = start + Duration::from_millis(70);
    assert!(matches!(
        queue.admit(Priority::Normal, 2, full),
        Admit::Wait
    ));
    assert!(queue.standing(Priority::Normal, full));
    assert_eq!(queue.len(), 1);
}

#[test]
fn a_queue_that_stood_lately_stands_again_as_soon_as_it_builds_up() {
    let start = Instant::now();
    let target = Duration::from_millis(5);
    let at = |ms: u64| start + Duration::from_millis(ms);
    let mut queue = Queue::new(target, start);
    // Stands: the only wait of the first interval was 20 ms.
    let _first = queue.push(Priority::Normal, start);
    assert!(queue.next(at(20)).is_some());
    assert!(queue.standing(Priority::Normal, at(100)));
    // It empties (a request served at once): it stands no more after the next interval.
    queue.granted_at_once(Priority::Normal, at(110));
    assert!(!queue.standing(Priority::Normal, at(201)));
    // It builds up again (and moves: one of them gets a worker): once its oldest request
    // waits past the target it stands at once, where it used to wait for the interval (or a
    // full queue) to say so.
    let _second = [
        queue.push(Priority::Normal, at(210)),
        queue.push(Priority::Normal, at(211)),
    ];
    assert!(queue.next(at(213)).is_some());
    assert!(!queue.standing(Priority::Normal, at(215)));
    assert!(queue.standing(Priority::Normal, at(217)));
    // And while it stands, the request past twice the target is answered 503.
    assert!(queue.sloughs(Priority::Normal, at(211), at(222)));
}

#[test]
fn a_queue_that_never_stood_absorbs_a_burst_for_an_interval() {
    let start = Instant::now();
    let mut queue = Queue::new(Duration::from_millis(5), start);
    let at = |ms: u64| start + Duration::from_millis(ms);
    queue.granted_at_once(Priority::Normal, at(1));
    let _burst = queue.push(Priority::Normal, at(2));
    // 60 ms of waiting, far past the target: no interval said it stands, so it waits on.
    assert!(!queue.standing(Priority::Normal, at(62)));
    assert!(!queue.sloughs(Priority::Normal, at(2), at(62)));
}

#[test]
fn a_queue_that_stood_lately_does_not_stand_again_while_nobody_gets_a_worker() {
    let start = Instant::now();
    let at = |ms: u64| start + Duration::from_millis(ms);
    let mut queue = Queue::new(Duration::from_millis(5), start);
    let _first = queue.push(Priority::Normal, start);
    assert!(queue.next(at(20)).is_some());
    assert!(queue.standing(Priority::Normal, at(100)));
    queue.granted_at_once(Priority::Normal, at(110));
    assert!(!queue.standing(Priority::Normal, at(201)));
    // Every worker is stuck (a database lock): nobody got one since this request came, so its
    // wait says nothing of the queue, and it keeps waiting (up to its deadline).
    let _stuck = queue.push(Priority::Normal, at(210));
    assert!(!queue.standing(Priority::Normal, at(260)));
    assert!(!queue.sloughs(Priority::Normal, at(210), at(260)));
}
