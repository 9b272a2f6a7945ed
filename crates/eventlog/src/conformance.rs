//! The conformance suite: the behaviour every [`EventLog`] backend must have,
//! written once against the trait. A backend's tests implement [`Harness`]
//! and call each case (see `crates/postgres/tests/it/conformance.rs`).
//!
//! Each case panics with a message saying what went wrong.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::type_complexity,
    missing_docs
)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use uuid::Uuid;
use ventanilla_kernel::{EventId, StreamId, TenantId};

use crate::envelope::{InvalidEvent, Metadata, NewEvent, Position, RecordedEvent};
use crate::log::{AppendError, EventLog, ExpectedVersion};

/// An append whose transaction stays open until committed.
#[async_trait]
pub trait SlowAppend: Send {
    async fn commit(self: Box<Self>) -> anyhow::Result<()>;
}

/// One member of a subscription's consumer group, recording what it applies
/// in the harness's probe.
#[async_trait]
pub trait Member: Send {
    /// Heartbeats and takes this member's share of the partitions.
    async fn rebalance(&mut self) -> anyhow::Result<()>;
    /// Applies batches until nothing is left to read (or the simulated crash).
    async fn catch_up(&mut self) -> anyhow::Result<usize>;
    /// The partitions held.
    fn owned(&self) -> Vec<u32>;
    /// Leaves the group cleanly.
    async fn leave(self: Box<Self>);
}

/// What the probe recorded for one event.
#[derive(Debug, Clone)]
pub struct ProbeRow {
    pub event_id: EventId,
    pub stream: String,
    pub version: u64,
    pub member: String,
    pub times: u32,
    /// Order of application across the whole probe.
    pub seq: u64,
}

/// What a backend's test provides to run the suite.
#[async_trait]
pub trait Harness: Send + Sync {
    type Log: EventLog;
    fn log(&self) -> Arc<Self::Log>;
    /// Appends `events` in a transaction left open until `commit`.
    async fn begin_slow_append(
        &self,
        tenant: TenantId,
        stream: &StreamId,
        events: Vec<NewEvent>,
    ) -> anyhow::Result<Box<dyn SlowAppend>>;
    /// Joins `member` to `subscription`. With `crash_after`, the member fails
    /// after applying that many events (its transaction is lost, as in a
    /// crash). Members are considered gone after `member_timeout`.
    async fn member(
        &self,
        subscription: &str,
        member: &str,
        partitions: u32,
        batch_size: usize,
        crash_after: Option<usize>,
        member_timeout: Duration,
    ) -> anyhow::Result<Box<dyn Member>>;
    /// The probe's rows for `subscription`.
    async fn applied(&self, subscription: &str) -> anyhow::Result<Vec<ProbeRow>>;
}

pub fn tenant(n: u128) -> TenantId {
    TenantId::from_uuid(Uuid::from_u128(0x1000 + n))
}

pub fn stream(s: &str) -> StreamId {
    StreamId::parse(s).unwrap()
}

pub fn event(kind: &str, n: u64) -> NewEvent {
    NewEvent {
        id: EventId::from_uuid(Uuid::new_v4()),
        event_type: kind.to_owned(),
        schema_version: 1,
        data: json!({ "n": n, "text": "Hola, ¿qué tal? — añadido" }),
        metadata: Metadata::system("conformance", Uuid::new_v4()),
    }
}

/// Reads everything after `after` until at least `expected` events came
/// back (and nothing more is readable), or 10 s pass. Waiting is needed: any
/// transaction open anywhere on the server holds readers back for a moment
/// (that is what makes the read gap-safe), and tests run in parallel.
pub async fn read_at_least<L: EventLog>(
    log: &L,
    after: Position,
    page: usize,
    expected: usize,
) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    let mut at = after;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let batch = log.read_all(at, page, None).await.unwrap();
        match batch.last() {
            Some(last) => at = last.position,
            None if out.len() >= expected || tokio::time::Instant::now() > deadline => break,
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
        out.extend(batch);
    }
    out
}

/// Runs `member` until the probe holds `expected` rows for `subscription`
/// (or 10 s pass).
async fn catch_up_to<H: Harness>(
    h: &H,
    member: &mut Box<dyn Member>,
    subscription: &str,
    expected: usize,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        member.catch_up().await.unwrap();
        if h.applied(subscription).await.unwrap().len() >= expected
            || tokio::time::Instant::now() > deadline
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Within a stream versions run 0, 1, 2…; globally positions strictly
/// increase; a tenant sees only its streams; unknown streams read empty.
pub async fn ordering<H: Harness>(h: &H) {
    let log = h.log();
    let (a, b) = (tenant(1), tenant(2));
    let s1 = stream("order-1");
    let s2 = stream("order-2");
    for round in 0..5u64 {
        log.append(a, &s1, ExpectedVersion::Any, vec![event("t.one", round)])
            .await
            .unwrap();
        log.append(b, &s1, ExpectedVersion::Any, vec![event("t.one", round)])
            .await
            .unwrap();
        log.append(
            a,
            &s2,
            ExpectedVersion::Any,
            vec![event("t.two", round), event("t.two", round + 100)],
        )
        .await
        .unwrap();
    }
    let a1 = log.read_stream(a, &s1, 0, 100).await.unwrap();
    assert_eq!(
        a1.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(
        a1.iter()
            .map(|e| e.data["n"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4],
        "events come back in the order they were appended"
    );
    assert!(a1.iter().all(|e| e.tenant_id == a && e.stream == s1));
    assert_eq!(
        a1[0].data["text"], "Hola, ¿qué tal? — añadido",
        "non-ASCII text survives"
    );
    let from3 = log.read_stream(a, &s1, 3, 100).await.unwrap();
    assert_eq!(
        from3.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(
        log.read_stream(a, &s2, 0, 3).await.unwrap().len(),
        3,
        "max is honoured"
    );
    assert!(
        log.read_stream(a, &stream("nope-1"), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        log.read_stream(b, &s1, 0, 100).await.unwrap().len(),
        5,
        "tenants have separate streams"
    );
    assert!(
        log.read_stream(b, &s2, 0, 100).await.unwrap().is_empty(),
        "tenant b cannot read tenant a's stream"
    );

    let all = read_at_least(log.as_ref(), Position::START, 4, 20).await;
    assert_eq!(all.len(), 20);
    assert!(
        all.windows(2).all(|w| w[0].position < w[1].position),
        "global order strictly increases"
    );
    let mut last_version: HashMap<(TenantId, String), u64> = HashMap::new();
    for e in &all {
        let key = (e.tenant_id, e.stream.to_string());
        if let Some(prev) = last_version.insert(key, e.version) {
            assert_eq!(
                e.version,
                prev + 1,
                "a stream's events appear in version order"
            );
        }
    }
    let rest = read_at_least(log.as_ref(), all[9].position, 100, 10).await;
    assert_eq!(
        rest.len(),
        10,
        "reading after a position returns exactly what follows it"
    );
    assert_eq!(rest[0].id, all[10].id);
    assert_eq!(
        log.head().await.unwrap(),
        all[19].position,
        "head is the last readable position"
    );
    assert_eq!(
        log.committed_head().await.unwrap(),
        all[19].position,
        "and the last committed one"
    );
}

/// A wrong expected version is refused and writes nothing; of concurrent
/// writers expecting the same version exactly one wins.
pub async fn expected_version<H: Harness>(h: &H) {
    let log = h.log();
    let t = tenant(3);
    let s = stream("conflict-1");
    log.append(t, &s, ExpectedVersion::NoStream, vec![event("t.a", 0)])
        .await
        .unwrap();
    let err = log
        .append(t, &s, ExpectedVersion::NoStream, vec![event("t.a", 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::WrongExpectedVersion {
                actual: Some(0),
                expected: ExpectedVersion::NoStream,
                ..
            }
        ),
        "NoStream on an existing stream: {err:?}"
    );
    for wrong in [1, 7] {
        let err = log
            .append(t, &s, ExpectedVersion::Exact(wrong), vec![event("t.a", 2)])
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                AppendError::WrongExpectedVersion {
                    actual: Some(0),
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let err = log
        .append(
            t,
            &stream("conflict-none"),
            ExpectedVersion::Exact(0),
            vec![event("t.a", 0)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::WrongExpectedVersion { actual: None, .. }),
        "{err:?}"
    );
    assert_eq!(
        log.read_stream(t, &s, 0, 10).await.unwrap().len(),
        1,
        "refused appends wrote nothing"
    );
    let ok = log
        .append(
            t,
            &s,
            ExpectedVersion::Exact(0),
            vec![event("t.a", 3), event("t.a", 4)],
        )
        .await
        .unwrap();
    assert_eq!(ok.version, 2);
    assert_eq!(ok.positions.len(), 2);
    assert!(!ok.already_stored);
    assert_eq!(
        log.append(t, &s, ExpectedVersion::Any, vec![event("t.a", 5)])
            .await
            .unwrap()
            .version,
        3
    );

    let racers = (0..8).map(|i| {
        let log = Arc::clone(&log);
        let s = s.clone();
        tokio::spawn(async move {
            log.append(t, &s, ExpectedVersion::Exact(3), vec![event("t.race", i)])
                .await
        })
    });
    let results = futures::future::join_all(racers).await;
    let wins = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(AppendError::WrongExpectedVersion { .. }))))
        .count();
    assert_eq!(
        (wins, conflicts),
        (1, 7),
        "exactly one of the racing writers wins"
    );
    assert_eq!(log.read_stream(t, &s, 0, 100).await.unwrap().len(), 5);

    // Writers with Any never lose an event to each other.
    let any = (0..8).map(|i| {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            log.append(
                t,
                &stream("conflict-any"),
                ExpectedVersion::Any,
                vec![event("t.any", i)],
            )
            .await
        })
    });
    for r in futures::future::join_all(any).await {
        r.unwrap().unwrap();
    }
    let versions: Vec<u64> = log
        .read_stream(t, &stream("conflict-any"), 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, (0..8).collect::<Vec<_>>());
}

/// Appending events whose ids are stored writes nothing and returns the
/// stored positions; a partial overlap is refused.
pub async fn idempotent_reappend<H: Harness>(h: &H) {
    let log = h.log();
    let t = tenant(4);
    let s = stream("idem-1");
    let batch = vec![event("t.a", 1), event("t.b", 2)];
    let first = log
        .append(t, &s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    let before = read_at_least(log.as_ref(), Position::START, 100, 2)
        .await
        .len();
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Any,
        ExpectedVersion::Exact(1),
    ] {
        let again = log.append(t, &s, expected, batch.clone()).await.unwrap();
        assert!(
            again.already_stored,
            "a retry with {expected:?} is recognised"
        );
        assert_eq!(
            again.positions, first.positions,
            "a retry returns the stored positions"
        );
        assert_eq!(again.version, 1);
    }
    // A single event, to a new stream and at an exact version.
    let one = event("t.one", 7);
    let s1 = log
        .append(
            t,
            &stream("idem-single"),
            ExpectedVersion::NoStream,
            vec![one.clone()],
        )
        .await
        .unwrap();
    let s2 = log
        .append(
            t,
            &stream("idem-single"),
            ExpectedVersion::NoStream,
            vec![one.clone()],
        )
        .await
        .unwrap();
    assert!(
        s2.already_stored && s2.positions == s1.positions,
        "a single-event retry is recognised"
    );
    let two = event("t.two", 8);
    let e1 = log
        .append(
            t,
            &stream("idem-single"),
            ExpectedVersion::Exact(0),
            vec![two.clone()],
        )
        .await
        .unwrap();
    let e2 = log
        .append(
            t,
            &stream("idem-single"),
            ExpectedVersion::Exact(0),
            vec![two],
        )
        .await
        .unwrap();
    assert!(!e1.already_stored && e2.already_stored && e1.positions == e2.positions);
    assert_eq!(e2.version, 1);
    let derived = EventId::derived("facebook:page-1", "m_123");
    let mut webhook = event("t.received", 9);
    webhook.id = derived;
    let w1 = log
        .append(
            t,
            &stream("idem-2"),
            ExpectedVersion::Any,
            vec![webhook.clone()],
        )
        .await
        .unwrap();
    let w2 = log
        .append(
            t,
            &stream("idem-2"),
            ExpectedVersion::Any,
            vec![webhook.clone()],
        )
        .await
        .unwrap();
    assert_eq!(
        w1.positions, w2.positions,
        "a webhook delivered twice is stored once"
    );

    let mut mixed = vec![batch[0].clone(), event("t.c", 3)];
    let err = log
        .append(t, &s, ExpectedVersion::Any, mixed.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::IdempotencyMismatch { .. }),
        "{err:?}"
    );
    mixed.truncate(1);
    let err = log
        .append(t, &stream("idem-3"), ExpectedVersion::Any, mixed)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::IdempotencyMismatch { .. }),
        "stored on another stream: {err:?}"
    );
    let after = read_at_least(log.as_ref(), Position::START, 100, before + 1)
        .await
        .len();
    assert_eq!(
        after,
        before + 3,
        "only the single events and the webhook's one event were added"
    );
}

/// Events that break the envelope's rules are refused and nothing is written.
pub async fn invalid_events_write_nothing<H: Harness>(h: &H) {
    let log = h.log();
    let t = tenant(5);
    let s = stream("invalid-1");
    let mut big = event("t.big", 0);
    big.data = json!({ "blob": "x".repeat(1024 * 1024 + 1) });
    let mut nul = event("t.nul", 0);
    nul.data = json!({ "s": "a\u{0}b" });
    let mut array = event("t.array", 0);
    array.data = json!([1, 2]);
    let cases: Vec<(Vec<NewEvent>, fn(&InvalidEvent) -> bool)> = vec![
        (vec![event("t.ok", 0), big], |e| {
            matches!(e, InvalidEvent::TooLarge { .. })
        }),
        (vec![nul], |e| matches!(e, InvalidEvent::NulCharacter(_))),
        (vec![array], |e| matches!(e, InvalidEvent::NotAnObject(_))),
        (vec![event("Bad Type", 0)], |e| {
            matches!(e, InvalidEvent::BadType(_))
        }),
        (vec![], |e| matches!(e, InvalidEvent::Empty)),
    ];
    for (events, check) in cases {
        match log.append(t, &s, ExpectedVersion::Any, events).await {
            Err(AppendError::Invalid(e)) => assert!(check(&e), "unexpected reason {e}"),
            other => panic!("expected an invalid-event error, got {other:?}"),
        }
    }
    assert!(
        log.read_stream(t, &s, 0, 10).await.unwrap().is_empty(),
        "nothing was written"
    );
}

/// A reader never skips an event whose transaction commits after later
/// ones, and never reads one twice.
pub async fn gap_safety<H: Harness>(h: &H) {
    let log = h.log();
    let t = tenant(6);
    log.append(
        t,
        &stream("gap-0"),
        ExpectedVersion::Any,
        vec![event("t.before", 0)],
    )
    .await
    .unwrap();
    let mut seen = read_at_least(log.as_ref(), Position::START, 100, 1).await;
    assert_eq!(seen.len(), 1);
    let mut checkpoint = seen[0].position;

    // A slow writer takes its place in the order first, then stays open...
    let slow_event = event("t.slow", 1);
    let slow_id = slow_event.id;
    let slow = h
        .begin_slow_append(t, &stream("gap-slow"), vec![slow_event])
        .await
        .unwrap();
    // ...while fast writers commit after it.
    for i in 0..5 {
        log.append(
            t,
            &stream(&format!("gap-fast-{i}")),
            ExpectedVersion::Any,
            vec![event("t.fast", i)],
        )
        .await
        .unwrap();
    }
    assert!(
        log.committed_head().await.unwrap() > log.head().await.unwrap(),
        "the committed events wait behind the open transaction: the committed head is ahead of the readable one"
    );
    let early = read_at_least(log.as_ref(), checkpoint, 100, 0).await;
    assert!(
        early.iter().all(|e| e.id != slow_id),
        "the open transaction's event cannot be visible yet"
    );
    if let Some(last) = early.last() {
        checkpoint = last.position;
    }
    seen.extend(early);
    slow.commit().await.unwrap();
    let late = read_at_least(log.as_ref(), checkpoint, 100, 7 - seen.len()).await;
    seen.extend(late);
    let ids: Vec<EventId> = seen.iter().map(|e| e.id).collect();
    let unique: HashSet<EventId> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "no event read twice");
    assert_eq!(ids.len(), 7, "no event skipped: {} of 7 read", ids.len());
    assert!(
        unique.contains(&slow_id),
        "the slow event was read once it committed"
    );

    // Under load: concurrent writers and a reader following them.
    let writers = (0..4u64).map(|w| {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            for i in 0..50 {
                log.append(
                    t,
                    &stream(&format!("gap-load-{w}-{}", i % 5)),
                    ExpectedVersion::Any,
                    vec![event("t.load", i)],
                )
                .await
                .unwrap();
            }
        })
    });
    let writers = futures::future::join_all(writers);
    let reader = {
        let log = Arc::clone(&log);
        let mut at = seen.last().unwrap().position;
        tokio::spawn(async move {
            let mut got = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while got.len() < 200 && tokio::time::Instant::now() < deadline {
                let batch = log.read_all(at, 17, None).await.unwrap();
                if let Some(last) = batch.last() {
                    at = last.position;
                } else {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                got.extend(batch.into_iter().map(|e| e.id));
            }
            got
        })
    };
    for w in writers.await {
        w.unwrap();
    }
    let got = reader.await.unwrap();
    let unique: HashSet<EventId> = got.iter().copied().collect();
    assert_eq!(
        got.len(),
        200,
        "the following reader saw every event exactly once"
    );
    assert_eq!(unique.len(), 200);
}

async fn append_spread<L: EventLog>(log: &L, streams: usize, per_stream: u64) {
    for v in 0..per_stream {
        for s in 0..streams {
            let t = tenant((s % 3) as u128);
            log.append(
                t,
                &stream(&format!("sub-{s}")),
                ExpectedVersion::Any,
                vec![event("t.sub", v)],
            )
            .await
            .unwrap();
        }
    }
}

fn check_exactly_once(rows: &[ProbeRow], expected: usize) {
    assert_eq!(
        rows.len(),
        expected,
        "every event applied ({} of {expected})",
        rows.len()
    );
    let twice: Vec<&ProbeRow> = rows.iter().filter(|r| r.times != 1).collect();
    assert!(twice.is_empty(), "events applied more than once: {twice:?}");
    let mut by_stream: BTreeMap<&str, Vec<&ProbeRow>> = BTreeMap::new();
    for r in rows {
        by_stream.entry(&r.stream).or_default().push(r);
    }
    for (s, mut rs) in by_stream {
        rs.sort_by_key(|r| r.seq);
        let versions: Vec<u64> = rs.iter().map(|r| r.version).collect();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "stream {s} applied out of order: {versions:?}"
        );
    }
}

/// A subscriber that dies mid-batch resumes from its checkpoint: nothing is
/// lost and nothing is applied twice.
pub async fn subscriber_resumes_after_crash<H: Harness>(h: &H) {
    let log = h.log();
    append_spread(log.as_ref(), 10, 10).await;
    // Make sure every event is readable, so the batches are full.
    assert_eq!(
        read_at_least(log.as_ref(), Position::START, 100, 100)
            .await
            .len(),
        100
    );
    let timeout = Duration::from_millis(500);
    let mut crashing = h
        .member("resume", "first", 1, 30, Some(45), timeout)
        .await
        .unwrap();
    crashing.rebalance().await.unwrap();
    let err = crashing.catch_up().await;
    assert!(err.is_err(), "the simulated crash happens");
    let partial = h.applied("resume").await.unwrap();
    assert_eq!(
        partial.len(),
        30,
        "only the committed first batch is applied"
    );
    drop(crashing); // dies without leaving: its lease must run out

    let mut second = h
        .member("resume", "second", 1, 30, None, timeout)
        .await
        .unwrap();
    second.rebalance().await.unwrap();
    assert!(
        second.owned().is_empty(),
        "the dead member's lease still holds"
    );
    tokio::time::sleep(timeout + Duration::from_millis(200)).await;
    second.rebalance().await.unwrap();
    assert_eq!(
        second.owned(),
        vec![0],
        "the lease ran out and the partition moved"
    );
    catch_up_to(h, &mut second, "resume", 100).await;
    check_exactly_once(&h.applied("resume").await.unwrap(), 100);
    append_spread(log.as_ref(), 2, 1).await;
    catch_up_to(h, &mut second, "resume", 102).await;
    check_exactly_once(&h.applied("resume").await.unwrap(), 102);
    second.leave().await;
}

/// Members split the partitions, each stream is handled by one member in
/// order, and when a member leaves the others take over its share.
pub async fn consumer_group<H: Harness>(h: &H) {
    let log = h.log();
    append_spread(log.as_ref(), 24, 3).await;
    // Long enough that a slow machine does not make a live member look gone.
    let timeout = Duration::from_secs(3);
    let mut a = h.member("group", "a", 4, 20, None, timeout).await.unwrap();
    let mut b = h.member("group", "b", 4, 20, None, timeout).await.unwrap();
    a.rebalance().await.unwrap();
    b.rebalance().await.unwrap();
    a.rebalance().await.unwrap(); // releases b's share
    b.rebalance().await.unwrap(); // claims it
    let (oa, ob) = (a.owned(), b.owned());
    assert_eq!(oa.len(), 2, "a owns half: {oa:?}");
    assert_eq!(ob.len(), 2, "b owns half: {ob:?}");
    let union: HashSet<u32> = oa.iter().chain(&ob).copied().collect();
    assert_eq!(
        union,
        (0..4).collect(),
        "together they own every partition once"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.applied("group").await.unwrap().len() < 72 && tokio::time::Instant::now() < deadline {
        a.catch_up().await.unwrap();
        b.catch_up().await.unwrap();
    }
    let rows = h.applied("group").await.unwrap();
    check_exactly_once(&rows, 72);
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for r in &rows {
        let prev = owner.insert(&r.stream, &r.member);
        assert!(
            prev.is_none_or(|m| m == r.member),
            "stream {} handled by two members",
            r.stream
        );
    }
    assert!(
        rows.iter().any(|r| r.member == "a") && rows.iter().any(|r| r.member == "b"),
        "both members worked"
    );

    // b leaves: a takes everything over at its next rebalance.
    b.leave().await;
    a.rebalance().await.unwrap();
    assert_eq!(a.owned(), vec![0, 1, 2, 3], "a took over b's partitions");
    append_spread(log.as_ref(), 24, 1).await;
    catch_up_to(h, &mut a, "group", 96).await;
    check_exactly_once(&h.applied("group").await.unwrap(), 96);

    // A member that dies without leaving: its share moves once its lease ends.
    let mut c = h.member("group", "c", 4, 20, None, timeout).await.unwrap();
    c.rebalance().await.unwrap();
    a.rebalance().await.unwrap();
    c.rebalance().await.unwrap();
    assert_eq!(c.owned().len(), 2, "c joined and took half");
    drop(c);
    tokio::time::sleep(timeout + Duration::from_millis(200)).await;
    a.rebalance().await.unwrap();
    assert_eq!(
        a.owned(),
        vec![0, 1, 2, 3],
        "a took over the dead member's partitions"
    );
    append_spread(log.as_ref(), 24, 1).await;
    catch_up_to(h, &mut a, "group", 120).await;
    check_exactly_once(&h.applied("group").await.unwrap(), 120);
    a.leave().await;
}
