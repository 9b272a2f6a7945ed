//! W3C trace context over HTTP: [`propagate_traceparent`] continues the
//! caller's trace (or starts one), makes the request's [`TraceParent`]
//! available to handlers, and runs the request inside an `http.request`
//! span.
//!
//! Handlers read it with `Extension<TraceParent>` and put it in the
//! metadata of the events they append, so the trace crosses services.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use uuid::Uuid;
use ventanilla_kernel::TraceParent;

/// The `traceparent` header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Middleware that gives every request a [`TraceParent`]: a child of a
/// valid incoming `traceparent` header, else a new root. It is inserted in
/// the request's extensions, recorded in the `http.request` span the
/// request runs in, and echoed in the response's `traceparent` header.
///
/// Install it with `router.layer(axum::middleware::from_fn(propagate_traceparent))`.
pub async fn propagate_traceparent(mut request: Request, next: Next) -> Response {
    let incoming = request
        .headers()
        .get(&TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<TraceParent>().ok());
    let context = request_context(incoming);
    request.extensions_mut().insert(context);

    let span = tracing::info_span!(
        "http.request",
        method = %request.method(),
        path = %request.uri().path(),
        trace_id = %format_args!("{:032x}", context.trace_id()),
        span_id = %format_args!("{:016x}", context.parent_id()),
        status = tracing::field::Empty,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "request finished"));

    if let Ok(value) = HeaderValue::from_str(&context.to_string()) {
        response.headers_mut().insert(TRACEPARENT, value);
    }
    response
}

/// The context of this request: a child of `incoming`, or a new root. Its
/// parent id is this request's span id, which is what whoever it calls
/// must see as their parent.
fn request_context(incoming: Option<TraceParent>) -> TraceParent {
    loop {
        // The variant bits of a v4 UUID make both halves non-zero; the loop
        // only guards the kernel's `Option`.
        let span_id = Uuid::new_v4().as_u64_pair().1;
        let context = match incoming {
            Some(parent) => parent.child(span_id),
            None => TraceParent::new_root(Uuid::new_v4().as_u128(), span_id),
        };
        if let Some(context) = context {
            return context;
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use axum::{Extension, Router};
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route(
                "/",
                get(
                    |Extension(context): Extension<TraceParent>| async move { context.to_string() },
                ),
            )
            .layer(axum::middleware::from_fn(propagate_traceparent))
    }

    async fn call(header: Option<&str>) -> (TraceParent, TraceParent) {
        let mut request = Request::builder().uri("/");
        if let Some(header) = header {
            request = request.header("traceparent", header);
        }
        let response = app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let echoed: TraceParent = response.headers()["traceparent"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let seen: TraceParent = std::str::from_utf8(&body).unwrap().parse().unwrap();
        (echoed, seen)
    }

    #[tokio::test]
    async fn continues_a_valid_incoming_trace() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (echoed, seen) = call(Some(incoming)).await;
        assert_eq!(echoed, seen);
        assert_eq!(seen.trace_id(), 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_ne!(seen.parent_id(), 0x00f067aa0ba902b7);
        assert!(seen.sampled());
    }

    #[tokio::test]
    async fn starts_a_trace_when_there_is_none_or_it_is_invalid() {
        let (echoed, seen) = call(None).await;
        assert_eq!(echoed, seen);

        let (_, other) = call(Some("00-zz-not-a-traceparent")).await;
        assert_ne!(other.trace_id(), seen.trace_id());
    }
}
