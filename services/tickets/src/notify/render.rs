//! What notifications and the citizens' pages say, in the subscriber's
//! language: Spanish, Galician, Catalan, Basque and English (Spanish for
//! any other). The wording is a table of phrases per language; one text
//! layout and one HTML layout (minijinja, HTML-escaped) lay every message
//! out, so a message reads the same in both bodies.
//!
//! What this module must not do: read anything or send anything; it turns
//! a [`Content`] and its links into a subject and two bodies.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a notification is about, stored once per cause
/// (`notify_contents.data`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    /// Confirm an e-mail subscription to `target` (a topic's name or a
    /// case's reference).
    Confirm {
        /// What the subscription is about, as the citizen knows it.
        target: String,
    },
    /// An announcement of the council.
    Announcement {
        /// The announcement.
        announcement_id: Uuid,
        /// Its title.
        title: String,
        /// Its text.
        body: String,
        /// A link to read more.
        link: Option<String>,
        /// An image.
        image_url: Option<String>,
        /// When it was published.
        at: DateTime<Utc>,
    },
    /// A reply on a case the citizen follows.
    CaseReply {
        /// The ticket.
        ticket_id: Uuid,
        /// Its reference.
        reference: String,
        /// Its subject.
        subject: String,
        /// The reply.
        body: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A case the citizen follows was resolved, closed or reopened.
    CaseStatus {
        /// The ticket.
        ticket_id: Uuid,
        /// Its reference.
        reference: String,
        /// Its subject.
        subject: String,
        /// `resolved`, `closed` or `reopened`.
        status: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A daily digest of the notifications stored under these ids.
    Digest {
        /// The contents it groups, oldest first.
        items: Vec<Uuid>,
    },
}

impl Content {
    /// The event type a webhook subscriber receives for it.
    pub fn webhook_type(&self) -> &'static str {
        match self {
            Content::Confirm { .. } => "subscription.confirmation",
            Content::Announcement { .. } => "announcement.published",
            Content::CaseReply { .. } => "case.replied",
            Content::CaseStatus { .. } => "case.status_changed",
            Content::Digest { .. } => "digest",
        }
    }
}

/// The links a message carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// Confirm the subscription (confirmation e-mails).
    pub confirm: Option<String>,
    /// Cancel it in one click.
    pub unsubscribe: Option<String>,
    /// List and cancel every subscription of the address.
    pub manage: Option<String>,
}

/// A message, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// The phrases of one language. `{tenant}`, `{target}`, `{reference}`,
/// `{subject}`, `{status}` and `{n}` are filled in.
#[derive(Debug)]
pub struct Phrases {
    /// The language tag.
    pub tag: &'static str,
    confirm_subject: &'static str,
    confirm_intro: &'static str,
    /// The confirm button.
    pub confirm_button: &'static str,
    confirm_ignore: &'static str,
    more: &'static str,
    reply_subject: &'static str,
    reply_intro: &'static str,
    status_subject: &'static str,
    status_intro: &'static str,
    resolved: &'static str,
    closed: &'static str,
    reopened: &'static str,
    digest_subject: &'static str,
    digest_intro: &'static str,
    why: &'static str,
    unsubscribe: &'static str,
    manage: &'static str,
    /// Page: confirm your subscription to `{target}`.
    pub page_confirm: &'static str,
    /// Page: confirmed.
    pub page_confirmed: &'static str,
    /// Page: stop notifications about `{target}`?
    pub page_unsubscribe: &'static str,
    /// Page: the unsubscribe button.
    pub page_unsubscribe_button: &'static str,
    /// Page: unsubscribed.
    pub page_unsubscribed: &'static str,
    /// Page: your subscriptions to `{tenant}`.
    pub page_manage: &'static str,
    /// Page: cancel one.
    pub page_cancel: &'static str,
    /// Page: none left.
    pub page_none: &'static str,
    /// Page: a link that is not valid or has expired.
    pub page_invalid: &'static str,
}

const ES: Phrases = Phrases {
    tag: "es",
    confirm_subject: "Confirma tu suscripción: {target}",
    confirm_intro: "Has pedido que {tenant} te avise sobre «{target}». Para empezar a recibir avisos, confirma tu suscripción:",
    confirm_button: "Confirmar suscripción",
    confirm_ignore: "Si no lo has pedido tú, ignora este mensaje: no recibirás nada más.",
    more: "Más información",
    reply_subject: "Respuesta a tu consulta {reference}",
    reply_intro: "{tenant} ha respondido a tu consulta {reference} ({subject}):",
    status_subject: "Tu consulta {reference} está {status}",
    status_intro: "Tu consulta {reference} ({subject}) está ahora {status}.",
    resolved: "resuelta",
    closed: "cerrada",
    reopened: "reabierta",
    digest_subject: "Resumen de {tenant}: {n} avisos",
    digest_intro: "Estos son los avisos de {tenant} desde el último resumen:",
    why: "Recibes este mensaje porque te suscribiste a los avisos de {tenant}.",
    unsubscribe: "Darme de baja",
    manage: "Gestionar mis suscripciones",
    page_confirm: "Confirma que quieres recibir avisos sobre «{target}».",
    page_confirmed: "Suscripción confirmada. Te avisaremos sobre «{target}».",
    page_unsubscribe: "¿Quieres dejar de recibir avisos sobre «{target}»?",
    page_unsubscribe_button: "Dejar de recibir avisos",
    page_unsubscribed: "Hecho: ya no recibirás avisos sobre «{target}».",
    page_manage: "Tus suscripciones a {tenant}",
    page_cancel: "Cancelar",
    page_none: "No tienes suscripciones activas.",
    page_invalid: "Este enlace no es válido o ha caducado. Comprueba que lo has copiado entero, o suscríbete de nuevo.",
};

const GL: Phrases = Phrases {
    tag: "gl",
    confirm_subject: "Confirma a túa subscrición: {target}",
    confirm_intro: "Pediches que {tenant} te avise sobre «{target}». Para comezar a recibir avisos, confirma a túa subscrición:",
    confirm_button: "Confirmar subscrición",
    confirm_ignore: "Se non o pediches ti, ignora esta mensaxe: non recibirás nada máis.",
    more: "Máis información",
    reply_subject: "Resposta á túa consulta {reference}",
    reply_intro: "{tenant} respondeu á túa consulta {reference} ({subject}):",
    status_subject: "A túa consulta {reference} está {status}",
    status_intro: "A túa consulta {reference} ({subject}) está agora {status}.",
    resolved: "resolta",
    closed: "pechada",
    reopened: "reaberta",
    digest_subject: "Resumo de {tenant}: {n} avisos",
    digest_intro: "Estes son os avisos de {tenant} desde o último resumo:",
    why: "Recibes esta mensaxe porque te subscribiches aos avisos de {tenant}.",
    unsubscribe: "Darme de baixa",
    manage: "Xestionar as miñas subscricións",
    page_confirm: "Confirma que queres recibir avisos sobre «{target}».",
    page_confirmed: "Subscrición confirmada. Avisarémoste sobre «{target}».",
    page_unsubscribe: "Queres deixar de recibir avisos sobre «{target}»?",
    page_unsubscribe_button: "Deixar de recibir avisos",
    page_unsubscribed: "Feito: xa non recibirás avisos sobre «{target}».",
    page_manage: "As túas subscricións a {tenant}",
    page_cancel: "Cancelar",
    page_none: "Non tes subscricións activas.",
    page_invalid: "Esta ligazón non é válida ou caducou. Comproba que a copiaches enteira, ou subscríbete de novo.",
};

const CA: Phrases = Phrases {
    tag: "ca",
    confirm_subject: "Confirma la teva subscripció: {target}",
    confirm_intro: "Has demanat que {tenant} t'avisi sobre «{target}». Per començar a rebre avisos, confirma la teva subscripció:",
    confirm_button: "Confirmar la subscripció",
    confirm_ignore: "Si no ho has demanat tu, ignora aquest missatge: no rebràs res més.",
    more: "Més informació",
    reply_subject: "Resposta a la teva consulta {reference}",
    reply_intro: "{tenant} ha respost la teva consulta {reference} ({subject}):",
    status_subject: "La teva consulta {reference} està {status}",
    status_intro: "La teva consulta {reference} ({subject}) està ara {status}.",
    resolved: "resolta",
    closed: "tancada",
    reopened: "reoberta",
    digest_subject: "Resum de {tenant}: {n} avisos",
    digest_intro: "Aquests són els avisos de {tenant} des de l'últim resum:",
    why: "Reps aquest missatge perquè et vas subscriure als avisos de {tenant}.",
    unsubscribe: "Donar-me de baixa",
    manage: "Gestionar les meves subscripcions",
    page_confirm: "Confirma que vols rebre avisos sobre «{target}».",
    page_confirmed: "Subscripció confirmada. T'avisarem sobre «{target}».",
    page_unsubscribe: "Vols deixar de rebre avisos sobre «{target}»?",
    page_unsubscribe_button: "Deixar de rebre avisos",
    page_unsubscribed: "Fet: ja no rebràs avisos sobre «{target}».",
    page_manage: "Les teves subscripcions a {tenant}",
    page_cancel: "Cancel·lar",
    page_none: "No tens subscripcions actives.",
    page_invalid: "Aquest enllaç no és vàlid o ha caducat. Comprova que l'has copiat sencer, o subscriu-te de nou.",
};

const EU: Phrases = Phrases {
    tag: "eu",
    confirm_subject: "Berretsi zure harpidetza: {target}",
    confirm_intro: "{tenant}(e)k «{target}» gaiari buruz abisatzea eskatu duzu. Abisuak jasotzen hasteko, berretsi zure harpidetza:",
    confirm_button: "Harpidetza berretsi",
    confirm_ignore: "Zuk eskatu ez baduzu, ez egin kasurik mezu honi: ez duzu beste ezer jasoko.",
    more: "Informazio gehiago",
    reply_subject: "Zure {reference} kontsultaren erantzuna",
    reply_intro: "{tenant}(e)k zure {reference} kontsulta ({subject}) erantzun du:",
    status_subject: "Zure {reference} kontsulta: {status}",
    status_intro: "Zure {reference} kontsulta ({subject}) orain {status} dago.",
    resolved: "ebatzita",
    closed: "itxita",
    reopened: "berriro irekita",
    digest_subject: "{tenant}: {n} abisuren laburpena",
    digest_intro: "Hauek dira {tenant}(r)en abisuak azken laburpenetik:",
    why: "Mezu hau jasotzen duzu {tenant}(r)en abisuetara harpidetu zinelako.",
    unsubscribe: "Harpidetza kendu",
    manage: "Nire harpidetzak kudeatu",
    page_confirm: "Berretsi «{target}» gaiari buruzko abisuak jaso nahi dituzula.",
    page_confirmed: "Harpidetza berretsita. «{target}» gaiari buruz abisatuko dizugu.",
    page_unsubscribe: "«{target}» gaiari buruzko abisuak jasotzeari utzi nahi diozu?",
    page_unsubscribe_button: "Abisuak jasotzeari utzi",
    page_unsubscribed: "Eginda: ez duzu gehiago «{target}» gaiari buruzko abisurik jasoko.",
    page_manage: "Zure harpidetzak: {tenant}",
    page_cancel: "Ezeztatu",
    page_none: "Ez duzu harpidetza aktiborik.",
    page_invalid: "Esteka hau ez da baliozkoa edo iraungi da. Egiaztatu osorik kopiatu duzula, edo harpidetu berriro.",
};

const EN: Phrases = Phrases {
    tag: "en",
    confirm_subject: "Confirm your subscription: {target}",
    confirm_intro: "You asked {tenant} to notify you about “{target}”. To start receiving notifications, confirm your subscription:",
    confirm_button: "Confirm subscription",
    confirm_ignore: "If you did not ask for this, ignore this message: you will receive nothing else.",
    more: "Read more",
    reply_subject: "Reply to your request {reference}",
    reply_intro: "{tenant} replied to your request {reference} ({subject}):",
    status_subject: "Your request {reference} is {status}",
    status_intro: "Your request {reference} ({subject}) is now {status}.",
    resolved: "resolved",
    closed: "closed",
    reopened: "reopened",
    digest_subject: "{tenant} digest: {n} notifications",
    digest_intro: "These are {tenant}'s notifications since the last digest:",
    why: "You receive this message because you subscribed to {tenant}'s notifications.",
    unsubscribe: "Unsubscribe",
    manage: "Manage my subscriptions",
    page_confirm: "Confirm that you want to be notified about “{target}”.",
    page_confirmed: "Subscription confirmed. We will notify you about “{target}”.",
    page_unsubscribe: "Stop notifications about “{target}”?",
    page_unsubscribe_button: "Stop notifications",
    page_unsubscribed: "Done: you will no longer be notified about “{target}”.",
    page_manage: "Your subscriptions to {tenant}",
    page_cancel: "Cancel",
    page_none: "You have no active subscriptions.",
    page_invalid: "This link is not valid or has expired. Check that it was copied whole, or subscribe again.",
};

/// The languages notifications are written in.
pub const LANGUAGES: [&str; 5] = ["es", "gl", "ca", "eu", "en"];

/// The phrases for `language` (its primary subtag; Spanish for others).
pub fn phrases(language: &str) -> &'static Phrases {
    let primary = language
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match primary.as_str() {
        "gl" => &GL,
        "ca" => &CA,
        "eu" => &EU,
        "en" => &EN,
        _ => &ES,
    }
}

/// Fills `{name}` placeholders.
pub fn fill(phrase: &str, values: &[(&str, &str)]) -> String {
    let mut out = phrase.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

const TEXT: &str = r#"{% if heading %}{{ heading }}

{% endif %}{% for p in paragraphs %}{{ p }}

{% endfor %}{% if button %}{{ button.label }}: {{ button.url }}

{% endif %}{% for item in items %}* {{ item.title }}
{% for p in item.paragraphs %}  {{ p }}
{% endfor %}{% if item.link %}  {{ more }}: {{ item.link }}
{% endif %}
{% endfor %}{% if link %}{{ more }}: {{ link }}

{% endif %}{% if footer %}--
{% for f in footer %}{{ f }}
{% endfor %}{% endif %}"#;

const HTML: &str = r#"<!DOCTYPE html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>{{ subject }}</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:auto;padding:1em;color:#222">
{% if heading %}<h1 style="font-size:1.3em">{{ heading }}</h1>
{% endif %}{% if image %}<p><img src="{{ image }}" alt="" style="max-width:100%"></p>
{% endif %}{% for p in paragraphs %}<p>{{ p }}</p>
{% endfor %}{% if button %}<p><a href="{{ button.url }}" style="display:inline-block;padding:.6em 1.2em;background:#0b5;color:#fff;text-decoration:none;border-radius:4px">{{ button.label }}</a></p>
{% endif %}{% for item in items %}<h2 style="font-size:1.1em">{{ item.title }}</h2>
{% for p in item.paragraphs %}<p>{{ p }}</p>
{% endfor %}{% if item.link %}<p><a href="{{ item.link }}">{{ more }}</a></p>
{% endif %}{% endfor %}{% if link %}<p><a href="{{ link }}">{{ more }}</a></p>
{% endif %}<hr><p style="font-size:.85em;color:#666">{% for f in footer %}{{ f }}<br>{% endfor %}{% for l in footer_links %}<a href="{{ l.url }}">{{ l.label }}</a>{% if not loop.last %} · {% endif %}{% endfor %}</p>
</body></html>
"#;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    // Both are fixed strings checked by the tests; a mistake is a bug.
    let _ = env.add_template("message.txt", TEXT);
    let _ = env.add_template("message.html", HTML);
    env
});

/// One item of a digest, as laid out.
#[derive(Debug, Clone, Serialize)]
struct Item {
    title: String,
    paragraphs: Vec<String>,
    link: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Button {
    label: String,
    url: String,
}

#[derive(Debug, Clone, Serialize)]
struct FooterLink {
    label: String,
    url: String,
}

fn paragraphs(text: &str) -> Vec<String> {
    text.split("\n\n")
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The title and paragraphs of one content as a digest item.
fn item(p: &Phrases, tenant: &str, content: &Content) -> Item {
    match content {
        Content::Announcement {
            title, body, link, ..
        } => Item {
            title: title.clone(),
            paragraphs: paragraphs(body),
            link: link.clone(),
        },
        Content::CaseReply {
            reference,
            subject,
            body,
            ..
        } => Item {
            title: fill(p.reply_subject, &[("reference", reference)]),
            paragraphs: std::iter::once(fill(
                p.reply_intro,
                &[
                    ("tenant", tenant),
                    ("reference", reference),
                    ("subject", subject),
                ],
            ))
            .chain(paragraphs(body))
            .collect(),
            link: None,
        },
        Content::CaseStatus {
            reference,
            subject,
            status,
            ..
        } => {
            let status = status_word(p, status);
            Item {
                title: fill(
                    p.status_subject,
                    &[("reference", reference), ("status", status)],
                ),
                paragraphs: vec![fill(
                    p.status_intro,
                    &[
                        ("reference", reference),
                        ("subject", subject),
                        ("status", status),
                    ],
                )],
                link: None,
            }
        }
        Content::Confirm { target } => Item {
            title: fill(p.confirm_subject, &[("target", target)]),
            paragraphs: vec![],
            link: None,
        },
        Content::Digest { .. } => Item {
            title: String::new(),
            paragraphs: vec![],
            link: None,
        },
    }
}

fn status_word<'a>(p: &'a Phrases, status: &'a str) -> &'a str {
    match status {
        "resolved" => p.resolved,
        "closed" => p.closed,
        "reopened" => p.reopened,
        other => other,
    }
}

/// Renders `content` from `tenant` in `language`; a digest lays out
/// `digest_items` (the contents its ids name, oldest first).
pub fn render(
    language: &str,
    tenant: &str,
    content: &Content,
    digest_items: &[Content],
    links: &Links,
) -> Result<Rendered, minijinja::Error> {
    let p = phrases(language);
    let mut heading = None;
    let mut paras = Vec::new();
    let mut button = None;
    let mut items = Vec::new();
    let mut link = None;
    let mut image = None;
    let subject = match content {
        Content::Confirm { target } => {
            paras.push(fill(
                p.confirm_intro,
                &[("tenant", tenant), ("target", target)],
            ));
            if let Some(url) = &links.confirm {
                button = Some(Button {
                    label: p.confirm_button.to_owned(),
                    url: url.clone(),
                });
            }
            paras.push(p.confirm_ignore.to_owned());
            fill(p.confirm_subject, &[("target", target)])
        }
        Content::Announcement {
            title,
            body,
            link: l,
            image_url,
            ..
        } => {
            heading = Some(title.clone());
            paras = paragraphs(body);
            link = l.clone();
            image = image_url.clone();
            title.clone()
        }
        Content::CaseReply { .. } | Content::CaseStatus { .. } => {
            let it = item(p, tenant, content);
            heading = Some(it.title.clone());
            paras = it.paragraphs;
            it.title
        }
        Content::Digest { .. } => {
            let n = digest_items.len().to_string();
            paras.push(fill(p.digest_intro, &[("tenant", tenant)]));
            items = digest_items.iter().map(|c| item(p, tenant, c)).collect();
            fill(p.digest_subject, &[("tenant", tenant), ("n", &n)])
        }
    };
    let mut footer = vec![fill(p.why, &[("tenant", tenant)])];
    if matches!(content, Content::Confirm { .. }) {
        footer.clear();
    }
    let mut footer_links = Vec::new();
    if !matches!(content, Content::Confirm { .. }) {
        if let Some(url) = &links.unsubscribe {
            footer_links.push(FooterLink {
                label: p.unsubscribe.to_owned(),
                url: url.clone(),
            });
        }
        if let Some(url) = &links.manage {
            footer_links.push(FooterLink {
                label: p.manage.to_owned(),
                url: url.clone(),
            });
        }
    }
    // The text body lists the footer links as lines.
    let text_footer: Vec<String> = footer
        .iter()
        .cloned()
        .chain(
            footer_links
                .iter()
                .map(|l| format!("{}: {}", l.label, l.url)),
        )
        .collect();
    let ctx = context! {
        lang => p.tag, subject => &subject, heading => &heading, paragraphs => &paras,
        button => &button, items => &items, link => &link, image => &image, more => p.more,
        footer => &footer, footer_links => &footer_links,
    };
    let html = TEMPLATES.get_template("message.html")?.render(&ctx)?;
    let text_ctx = context! {
        heading => &heading, paragraphs => &paras, button => &button, items => &items,
        link => &link, more => p.more, footer => &text_footer,
    };
    let text = TEMPLATES.get_template("message.txt")?.render(&text_ctx)?;
    Ok(Rendered {
        subject,
        text,
        html,
    })
}

/// A notification as one short text, for a social network (the caller
/// fits it to the network).
pub fn short(language: &str, tenant: &str, content: &Content) -> String {
    let p = phrases(language);
    match content {
        Content::Announcement { title, link, .. } => match link {
            Some(l) => format!("{title} {l}"),
            None => title.clone(),
        },
        Content::CaseReply {
            reference, body, ..
        } => format!(
            "{}: {}",
            fill(p.reply_subject, &[("reference", reference)]),
            body
        ),
        Content::CaseStatus { .. } | Content::Confirm { .. } | Content::Digest { .. } => {
            let it = item(p, tenant, content);
            it.paragraphs.first().cloned().unwrap_or(it.title)
        }
    }
}

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><meta name="robots" content="noindex"><title>{{ tenant }}</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:auto;padding:1em;color:#222">
<p style="color:#666">{{ tenant }}</p>
{% if heading %}<h1 style="font-size:1.3em">{{ heading }}</h1>{% endif %}
{% for p in paragraphs %}<p>{{ p }}</p>
{% endfor %}{% for f in forms %}<form method="post" action="{{ f.action }}"><input type="hidden" name="t" value="{{ f.token }}">{% if f.subscription %}<input type="hidden" name="subscription" value="{{ f.subscription }}">{% endif %}{% if f.label_text %}<span>{{ f.label_text }}</span> {% endif %}<button type="submit">{{ f.button }}</button></form>
{% endfor %}</body></html>
"#;

/// A form of a citizen's page: a button that POSTs the token back.
#[derive(Debug, Clone, Serialize)]
pub struct PageForm {
    /// Where it posts.
    pub action: String,
    /// The link's token.
    pub token: String,
    /// A subscription it is about (the manage page).
    pub subscription: Option<String>,
    /// A label before the button.
    pub label_text: Option<String>,
    /// The button's label.
    pub button: String,
}

/// A citizen's page (confirm, unsubscribe, manage), HTML-escaped.
pub fn page(
    language: &str,
    tenant: &str,
    heading: Option<&str>,
    paragraphs: &[String],
    forms: &[PageForm],
) -> Result<String, minijinja::Error> {
    let env = &*TEMPLATES;
    let tmpl = env.template_from_named_str("page.html", PAGE)?;
    tmpl.render(context! {
        lang => phrases(language).tag, tenant => tenant, heading => heading,
        paragraphs => paragraphs, forms => forms,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn links() -> Links {
        Links {
            confirm: Some("https://v.example/notify/confirm?t=abc".into()),
            unsubscribe: Some("https://v.example/notify/unsubscribe?t=def".into()),
            manage: Some("https://v.example/notify/manage?t=ghi".into()),
        }
    }

    #[test]
    fn an_announcement_reads_the_same_in_text_and_escaped_html() {
        let content = Content::Announcement {
            announcement_id: Uuid::nil(),
            title: "Inscripción abierta: campamentos <de> verano".into(),
            body: "Desde hoy.\n\nPlazas limitadas & gratis.".into(),
            link: Some("https://lugo.gal/campamentos".into()),
            image_url: None,
            at: Utc::now(),
        };
        let r = render("es-ES", "Concello de Lugo", &content, &[], &links()).unwrap();
        assert_eq!(r.subject, "Inscripción abierta: campamentos <de> verano");
        assert!(r.text.contains("Plazas limitadas & gratis."), "{}", r.text);
        assert!(
            r.text
                .contains("Darme de baja: https://v.example/notify/unsubscribe?t=def")
        );
        assert!(
            r.text
                .contains("Más información: https://lugo.gal/campamentos")
        );
        assert!(
            r.html.contains("campamentos &lt;de&gt; verano"),
            "{}",
            r.html
        );
        assert!(r.html.contains("Plazas limitadas &amp; gratis."));
        assert!(r.html.contains("lang=\"es\""));
        assert!(!r.html.contains("<de>"));
    }

    #[test]
    fn each_language_has_its_words_and_others_fall_back_to_spanish() {
        let content = Content::CaseStatus {
            ticket_id: Uuid::nil(),
            reference: "LUGO-2026-000001".into(),
            subject: "Farola".into(),
            status: "resolved".into(),
            at: Utc::now(),
        };
        let gl = render("gl", "Concello", &content, &[], &links()).unwrap();
        assert_eq!(gl.subject, "A túa consulta LUGO-2026-000001 está resolta");
        let en = render("en", "Council", &content, &[], &links()).unwrap();
        assert_eq!(en.subject, "Your request LUGO-2026-000001 is resolved");
        let fr = render("fr", "Concello", &content, &[], &links()).unwrap();
        assert_eq!(fr.subject, "Tu consulta LUGO-2026-000001 está resuelta");
        for l in LANGUAGES {
            assert_eq!(phrases(l).tag, l);
        }
    }

    #[test]
    fn a_confirmation_has_its_button_and_no_unsubscribe_and_a_digest_lists_its_items() {
        let r = render(
            "es",
            "Concello",
            &Content::Confirm {
                target: "Obras".into(),
            },
            &[],
            &links(),
        )
        .unwrap();
        assert_eq!(r.subject, "Confirma tu suscripción: Obras");
        assert!(
            r.text
                .contains("Confirmar suscripción: https://v.example/notify/confirm?t=abc")
        );
        assert!(
            !r.text.contains("unsubscribe") && !r.text.contains("--"),
            "{}",
            r.text
        );
        let items = vec![
            Content::Announcement {
                announcement_id: Uuid::nil(),
                title: "Uno".into(),
                body: "a".into(),
                link: None,
                image_url: None,
                at: Utc::now(),
            },
            Content::Announcement {
                announcement_id: Uuid::nil(),
                title: "Dos".into(),
                body: "b".into(),
                link: None,
                image_url: None,
                at: Utc::now(),
            },
        ];
        let d = render(
            "es",
            "Concello",
            &Content::Digest { items: vec![] },
            &items,
            &links(),
        )
        .unwrap();
        assert_eq!(d.subject, "Resumen de Concello: 2 avisos");
        assert!(
            d.text.contains("* Uno") && d.text.contains("* Dos"),
            "{}",
            d.text
        );
    }

    #[test]
    fn pages_escape_what_they_show() {
        let html = page(
            "gl",
            "Concello <b>",
            Some("Ola"),
            &["x < y".into()],
            &[PageForm {
                action: "/notify/unsubscribe".into(),
                token: "tok\"en".into(),
                subscription: None,
                label_text: None,
                button: "Deixar".into(),
            }],
        )
        .unwrap();
        assert!(html.contains("Concello &lt;b&gt;") && html.contains("x &lt; y"));
        assert!(html.contains("value=\"tok&quot;en\""), "{html}");
    }
}
