//! The command path over the real log: load, decide, append with the
//! expected version, retry conflicts, idempotent replays, and the metadata
//! (trace context, actor, correlation) stored with every event.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;
use ventanilla_eventlog::{
    CommandContext, CommandError, CommandRunner, Decider, DomainEvent, EventLog, ExpectedVersion,
    Limits, UpcastError,
};
use ventanilla_kernel::{Actor, StreamId, TenantId, TraceParent};
use ventanilla_postgres::PgEventLog;
use ventanilla_testkit::TestDb;

/// A suggestion box that accepts at most three suggestions.
struct SuggestionBox;

#[derive(Debug, Clone, PartialEq)]
enum BoxEvent {
    Suggested { text: String },
}

#[derive(Debug, thiserror::Error, PartialEq)]
enum BoxError {
    #[error("the box is full")]
    Full,
}

impl DomainEvent for BoxEvent {
    fn event_type(&self) -> &'static str {
        "suggestion_box.suggested"
    }
    fn schema_version(&self) -> u16 {
        2
    }
    fn to_data(&self) -> Value {
        let BoxEvent::Suggested { text } = self;
        json!({ "text": text })
    }
    fn from_stored(t: &str, v: u16, data: &Value) -> Result<Self, UpcastError> {
        let err = |reason: &str| UpcastError {
            event_type: t.into(),
            schema_version: v,
            reason: reason.into(),
        };
        match (t, v) {
            // Version 1 called the field "body": upcast it.
            ("suggestion_box.suggested", 1) => Ok(BoxEvent::Suggested {
                text: data["body"]
                    .as_str()
                    .ok_or_else(|| err("no body"))?
                    .to_owned(),
            }),
            ("suggestion_box.suggested", 2) => Ok(BoxEvent::Suggested {
                text: data["text"]
                    .as_str()
                    .ok_or_else(|| err("no text"))?
                    .to_owned(),
            }),
            _ => Err(err("unknown event")),
        }
    }
}

impl Decider for SuggestionBox {
    type State = Vec<String>;
    type Command = String;
    type Event = BoxEvent;
    type Error = BoxError;
    fn decide(
        state: &Vec<String>,
        text: &String,
        _: DateTime<Utc>,
    ) -> Result<Vec<BoxEvent>, BoxError> {
        if state.len() >= 3 {
            return Err(BoxError::Full);
        }
        Ok(vec![BoxEvent::Suggested { text: text.clone() }])
    }
    fn evolve(mut state: Vec<String>, event: &BoxEvent) -> Vec<String> {
        let BoxEvent::Suggested { text } = event;
        state.push(text.clone());
        state
    }
}

fn ctx(tenant: TenantId) -> CommandContext {
    CommandContext::new(
        tenant,
        Utc::now(),
        Actor::Staff {
            id: "agent-7".into(),
        },
    )
}

#[tokio::test]
async fn decides_appends_and_refuses_with_typed_errors() {
    let db = TestDb::new().await;
    let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
    let runner = CommandRunner::new(Arc::clone(&log), 5);
    let t = TenantId::from_uuid(Uuid::from_u128(9));
    let s = StreamId::parse("box-1").unwrap();
    let trace: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .unwrap();
    let c = ctx(t).with_traceparent(Some(trace));
    let done = runner
        .execute::<SuggestionBox>(&c, &s, &"Más bancos en la plaza".to_owned())
        .await
        .unwrap();
    assert_eq!(done.state, vec!["Más bancos en la plaza".to_owned()]);
    assert_eq!(done.version, Some(0));
    assert!(done.position.is_some());
    for text in ["b", "c"] {
        runner
            .execute::<SuggestionBox>(&ctx(t), &s, &text.to_owned())
            .await
            .unwrap();
    }
    let err = runner
        .execute::<SuggestionBox>(&ctx(t), &s, &"d".to_owned())
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Domain(BoxError::Full)));
    assert_eq!(
        log.read_stream(t, &s, 0, 10).await.unwrap().len(),
        3,
        "a refusal writes nothing"
    );

    let stored = &log.read_stream(t, &s, 0, 1).await.unwrap()[0];
    assert_eq!(
        stored.metadata.traceparent,
        Some(trace),
        "the request's trace context is stored with the event"
    );
    assert_eq!(
        stored.metadata.actor,
        Actor::Staff {
            id: "agent-7".into()
        }
    );
    assert_eq!(stored.metadata.correlation_id, c.correlation_id);
    assert_eq!(stored.schema_version, 2);
}

#[tokio::test]
async fn old_schema_versions_are_upcast_on_load() {
    let db = TestDb::new().await;
    let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
    let t = TenantId::from_uuid(Uuid::from_u128(10));
    let s = StreamId::parse("box-2").unwrap();
    let mut old = ventanilla_eventlog::conformance::event("suggestion_box.suggested", 0);
    old.schema_version = 1;
    old.data = json!({ "body": "written by version 1" });
    log.append(t, &s, ExpectedVersion::NoStream, vec![old])
        .await
        .unwrap();
    let runner = CommandRunner::new(Arc::clone(&log), 5);
    let done = runner
        .execute::<SuggestionBox>(&ctx(t), &s, &"new".to_owned())
        .await
        .unwrap();
    assert_eq!(
        done.state,
        vec!["written by version 1".to_owned(), "new".to_owned()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_retry_conflicts_and_respect_the_invariant() {
    let db = TestDb::new().await;
    let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
    let runner = CommandRunner::new(Arc::clone(&log), 10);
    let t = TenantId::from_uuid(Uuid::from_u128(11));
    let s = StreamId::parse("box-3").unwrap();
    let tasks = (0..6).map(|i| {
        let runner = runner.clone();
        let s = s.clone();
        tokio::spawn(async move {
            runner
                .execute::<SuggestionBox>(&ctx(t), &s, &format!("idea {i}"))
                .await
        })
    });
    let results = futures::future::join_all(tasks).await;
    let ok = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let full = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(CommandError::Domain(BoxError::Full)))))
        .count();
    assert_eq!(
        (ok, full),
        (3, 3),
        "conflicts were retried and decided again on fresh state"
    );
    assert_eq!(log.read_stream(t, &s, 0, 10).await.unwrap().len(), 3);
}

#[tokio::test]
async fn an_idempotent_command_runs_once() {
    let db = TestDb::new().await;
    let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
    let runner = CommandRunner::new(Arc::clone(&log), 5);
    let t = TenantId::from_uuid(Uuid::from_u128(12));
    let s = StreamId::parse("box-4").unwrap();
    let key = Uuid::new_v4();
    let c = ctx(t).with_idempotency_key(key);
    let first = runner
        .execute::<SuggestionBox>(&c, &s, &"once".to_owned())
        .await
        .unwrap();
    let again = runner
        .execute::<SuggestionBox>(&c, &s, &"once".to_owned())
        .await
        .unwrap();
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.position, again.position);
    assert_eq!(
        again.events,
        vec![BoxEvent::Suggested {
            text: "once".into()
        }]
    );
    assert_eq!(
        log.read_stream(t, &s, 0, 10).await.unwrap().len(),
        1,
        "the retry wrote nothing"
    );
}

#[tokio::test]
async fn an_oversized_event_is_refused_by_the_runner() {
    let db = TestDb::new().await;
    let log = Arc::new(PgEventLog::new(
        db.app.clone(),
        Limits {
            max_event_bytes: 64,
            ..Limits::default()
        },
    ));
    let runner = CommandRunner::new(Arc::clone(&log), 5);
    let t = TenantId::from_uuid(Uuid::from_u128(13));
    let s = StreamId::parse("box-5").unwrap();
    let err = runner
        .execute::<SuggestionBox>(&ctx(t), &s, &"x".repeat(100))
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("the limit is 64 bytes"), "{err}");
}
