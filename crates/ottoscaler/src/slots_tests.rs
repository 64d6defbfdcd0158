use super::*;

#[tokio::test]
async fn fair_queue_serves_in_order_and_reports_positions() {
    let gauge = Gauge::default();
    let slots = Slots::with_gauge(
        1,
        BTreeMap::new(),
        gauge.clone(),
        crate::metrics::Counts::default(),
    );
    let first = slots.try_acquire("t", 1, Cost::default()).unwrap();
    let positions = Arc::new(Mutex::new(Vec::new()));
    let (p2, p3) = (positions.clone(), positions.clone());
    let s2 = slots.clone();
    let a = tokio::spawn(async move {
        s2.acquire("t", "ci", Cost::default(), |p| {
            p2.lock().unwrap().push(("a", p))
        })
        .await
    });
    // Let `a` enter the queue before `b`.
    while slots.usage().2 < 1 {
        tokio::task::yield_now().await;
    }
    let s3 = slots.clone();
    let b = tokio::spawn(async move {
        s3.acquire("t", "ci", Cost::default(), |p| {
            p3.lock().unwrap().push(("b", p))
        })
        .await
    });
    while slots.usage().2 < 2 {
        tokio::task::yield_now().await;
    }
    // Nobody jumps the line: a free slot goes to the head, not to try_acquire.
    assert_eq!(slots.usage(), (1, 1, 2));
    assert_eq!(gauge.get(), 2, "the queued-stages gauge follows the queue");
    drop(first);
    let pa = a.await.unwrap();
    assert_eq!(slots.usage(), (1, 1, 1));
    assert!(slots.try_acquire("t", 1, Cost::default()).is_err());
    drop(pa);
    let pb = b.await.unwrap();
    drop(pb);
    assert_eq!(slots.usage(), (1, 0, 0));
    assert_eq!(gauge.get(), 0);
    let seen = positions.lock().unwrap().clone();
    assert!(
        seen.contains(&("a", 1)) && seen.contains(&("b", 2)) && seen.contains(&("b", 1)),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_waiter_that_goes_away_leaves_the_line() {
    let slots = Slots::new(0);
    let s = slots.clone();
    let w = tokio::spawn(async move { s.acquire("t", "ci", Cost::default(), |_| {}).await });
    while slots.usage().2 < 1 {
        tokio::task::yield_now().await;
    }
    w.abort();
    let _ = w.await;
    assert_eq!(slots.usage(), (0, 0, 0));
}

#[tokio::test]
async fn a_team_at_its_quota_holds_up_no_other_team() {
    let quota = |n| Quota {
        workers: Some(n),
        ..Quota::default()
    };
    let slots = Slots::with_gauge(
        10,
        BTreeMap::from([("a".to_string(), quota(1)), ("b".to_string(), quota(2))]),
        Gauge::default(),
        crate::metrics::Counts::default(),
    );
    let c = Cost::default();
    let a1 = slots.try_acquire("a", 1, c).unwrap();
    assert_eq!(
        slots.try_acquire("a", 1, c).unwrap_err(),
        Refused::Quota("1 workers (1 held)".into())
    );
    let s = slots.clone();
    let a2 = tokio::spawn(async move { s.acquire("a", "ci", c, |_| {}).await });
    while slots.usage().2 < 1 {
        tokio::task::yield_now().await;
    }
    // b goes past a's waiter, up to its own quota.
    let b = slots.try_acquire("b", 2, c).unwrap();
    assert_eq!(
        slots.team_workers(),
        BTreeMap::from([("a".into(), 1), ("b".into(), 2)])
    );
    drop(a1);
    let a2 = a2.await.unwrap();
    assert_eq!(slots.usage(), (10, 3, 0));
    drop((a2, b));
    assert_eq!(slots.usage(), (10, 0, 0));
}

#[tokio::test]
async fn a_grant_nobody_picks_up_is_returned() {
    let slots = Slots::new(1);
    let first = slots.try_acquire("t", 1, Cost::default()).unwrap();
    let s = slots.clone();
    let w = tokio::spawn(async move { s.acquire("t", "ci", Cost::default(), |_| {}).await });
    while slots.usage().2 < 1 {
        tokio::task::yield_now().await;
    }
    // The grant is made under the lock the moment the permit is dropped; the
    // waiter is aborted before it can pick it up.
    drop(first);
    w.abort();
    let _ = w.await;
    assert_eq!(slots.usage(), (1, 0, 0));
}
