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
