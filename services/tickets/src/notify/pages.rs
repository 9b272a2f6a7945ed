//! The citizens' pages behind the links of their e-mails, served by the
//! tickets service's process: confirm a subscription, leave one (also the
//! RFC 8058 one-click `POST` mail programs send from `List-Unsubscribe`),
//! and list and cancel an address's subscriptions. The link's token is the
//! only credential; it names its tenant.
//!
//! A `GET` never changes anything — mail scanners follow links — it shows
//! a page with a button that `POST`s the token back.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use uuid::Uuid;
use ventanilla_kernel::TenantId;

use super::error::NotifyError;
use super::links::Purpose;
use super::render::{self, PageForm, Phrases, fill, phrases};
use super::service::{Notifications, SubscriptionView};

/// The token, from the query string or the form.
#[derive(Debug, Default, Deserialize)]
struct TokenParams {
    #[serde(default)]
    t: String,
    #[serde(default)]
    subscription: Option<Uuid>,
}

/// The routes.
pub fn router(service: Notifications) -> Router {
    Router::new()
        .route("/notify/confirm", get(confirm_page).post(confirm))
        .route(
            "/notify/unsubscribe",
            get(unsubscribe_page).post(unsubscribe),
        )
        .route("/notify/manage", get(manage_page).post(manage_cancel))
        .with_state(service)
}

/// Query parameters merged with a form body (the one-click POST carries
/// the token in the URL and `List-Unsubscribe=One-Click` in the body).
fn params(query: TokenParams, body: &str) -> TokenParams {
    let form = form_fields(body);
    TokenParams {
        t: if form.t.is_empty() { query.t } else { form.t },
        subscription: form.subscription.or(query.subscription),
    }
}

/// `application/x-www-form-urlencoded` → the two fields we read.
fn form_fields(body: &str) -> TokenParams {
    let mut out = TokenParams::default();
    for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
        match k.as_ref() {
            "t" => out.t = v.into_owned(),
            "subscription" => out.subscription = Uuid::parse_str(&v).ok(),
            _ => {}
        }
    }
    out
}

fn page(
    status: StatusCode,
    language: &str,
    tenant: &str,
    heading: Option<&str>,
    paragraphs: &[String],
    forms: &[PageForm],
) -> Response {
    match render::page(language, tenant, heading, paragraphs, forms) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not render a citizen's page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The page for a refusal.
fn refused(e: &NotifyError) -> Response {
    let p = phrases("es");
    let (status, text) = match e.code() {
        "NOT_FOUND" => (StatusCode::NOT_FOUND, p.page_invalid.to_owned()),
        "CONFLICT" => (StatusCode::CONFLICT, e.to_string()),
        "TENANT_SUSPENDED" => (StatusCode::FORBIDDEN, e.to_string()),
        "UNAVAILABLE" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Este servicio no está disponible ahora mismo.".to_owned(),
        ),
        _ => {
            tracing::error!(error = ?e, "a citizen's link failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Algo ha fallado; inténtalo de nuevo más tarde.".to_owned(),
            )
        }
    };
    page(status, "es", "", None, &[text], &[])
}

async fn tenant_name(service: &Notifications, tenant: TenantId) -> String {
    service
        .tenancy()
        .active_tenant(tenant)
        .await
        .map(|t| t.name)
        .unwrap_or_default()
}

async fn describe(service: &Notifications, tenant: TenantId, view: &SubscriptionView) -> String {
    service.target_label(tenant, view).await.unwrap_or_default()
}

/// The page a link's `GET` shows: what it is about and a button that
/// `POST`s the token to `action` — nothing changes yet.
async fn ask(
    service: &Notifications,
    purpose: Purpose,
    token: String,
    action: &str,
    question: fn(&Phrases) -> &'static str,
    button: fn(&Phrases) -> &'static str,
) -> Response {
    let Some((tenant, id)) = service
        .config()
        .key
        .as_ref()
        .and_then(|k| k.open(purpose, &token))
    else {
        return refused(&NotifyError::InvalidLink);
    };
    let view = match service.subscription(tenant, id).await {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    let p = phrases(&view.language);
    let target = describe(service, tenant, &view).await;
    let name = tenant_name(service, tenant).await;
    page(
        StatusCode::OK,
        &view.language,
        &name,
        None,
        &[fill(question(p), &[("target", &target)])],
        &[PageForm {
            action: action.into(),
            token,
            subscription: None,
            label_text: None,
            button: button(p).to_owned(),
        }],
    )
}

/// The page after a link's `POST` did its change (or why it did not).
async fn done(
    service: &Notifications,
    result: Result<(TenantId, SubscriptionView), NotifyError>,
    said: fn(&Phrases) -> &'static str,
) -> Response {
    match result {
        Ok((tenant, view)) => {
            let target = describe(service, tenant, &view).await;
            let name = tenant_name(service, tenant).await;
            page(
                StatusCode::OK,
                &view.language,
                &name,
                None,
                &[fill(said(phrases(&view.language)), &[("target", &target)])],
                &[],
            )
        }
        Err(e) => refused(&e),
    }
}

async fn confirm_page(
    State(service): State<Notifications>,
    Query(q): Query<TokenParams>,
) -> Response {
    ask(
        &service,
        Purpose::Confirm,
        q.t,
        "/notify/confirm",
        |p| p.page_confirm,
        |p| p.confirm_button,
    )
    .await
}

async fn confirm(
    State(service): State<Notifications>,
    Query(q): Query<TokenParams>,
    body: String,
) -> Response {
    let p = params(q, &body);
    done(&service, service.confirm(&p.t).await, |p| p.page_confirmed).await
}

async fn unsubscribe_page(
    State(service): State<Notifications>,
    Query(q): Query<TokenParams>,
) -> Response {
    ask(
        &service,
        Purpose::Unsubscribe,
        q.t,
        "/notify/unsubscribe",
        |p| p.page_unsubscribe,
        |p| p.page_unsubscribe_button,
    )
    .await
}

async fn unsubscribe(
    State(service): State<Notifications>,
    Query(q): Query<TokenParams>,
    body: String,
) -> Response {
    let p = params(q, &body);
    done(&service, service.unsubscribe(&p.t).await, |p| {
        p.page_unsubscribed
    })
    .await
}

async fn manage_list(service: &Notifications, token: &str, notice: Option<String>) -> Response {
    let (tenant, views) = match service.manage(token).await {
        Ok(found) => found,
        Err(e) => return refused(&e),
    };
    let name = tenant_name(service, tenant).await;
    let language = views
        .first()
        .map_or("es".to_owned(), |v| v.language.clone());
    let p = phrases(&language);
    let mut forms = Vec::new();
    for v in views
        .iter()
        .filter(|v| v.status == "active" || v.status == "pending")
    {
        forms.push(PageForm {
            action: "/notify/manage".into(),
            token: token.to_owned(),
            subscription: Some(v.subscription_id.to_string()),
            label_text: Some(describe(service, tenant, v).await),
            button: p.page_cancel.to_owned(),
        });
    }
    let mut paragraphs: Vec<String> = notice.into_iter().collect();
    if forms.is_empty() {
        paragraphs.push(p.page_none.to_owned());
    }
    page(
        StatusCode::OK,
        &language,
        &name,
        Some(&fill(p.page_manage, &[("tenant", &name)])),
        &paragraphs,
        &forms,
    )
}

async fn manage_page(
    State(service): State<Notifications>,
    Query(q): Query<TokenParams>,
) -> Response {
    manage_list(&service, &q.t, None).await
}

async fn manage_cancel(
    State(service): State<Notifications>,
    Query(q): Query<TokenParams>,
    body: String,
) -> Response {
    let p = params(q, &body);
    let Some(subscription) = p.subscription else {
        return refused(&NotifyError::NotFound("no such subscription".into()));
    };
    match service.cancel_from_manage(&p.t, subscription).await {
        Ok((tenant, view)) => {
            let target = describe(&service, tenant, &view).await;
            let notice = fill(
                phrases(&view.language).page_unsubscribed,
                &[("target", &target)],
            );
            manage_list(&service, &p.t, Some(notice)).await
        }
        Err(e) => refused(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_are_decoded() {
        let p = form_fields("List-Unsubscribe=One-Click");
        assert!(p.t.is_empty() && p.subscription.is_none());
        let id = Uuid::new_v4();
        let p = form_fields(&format!("t=ab%2Dc_d+e&subscription={id}"));
        assert_eq!((p.t.as_str(), p.subscription), ("ab-c_d e", Some(id)));
        let merged = params(
            TokenParams {
                t: "from-query".into(),
                subscription: None,
            },
            "List-Unsubscribe=One-Click",
        );
        assert_eq!(merged.t, "from-query");
    }
}
