//! The council's announcements on its social accounts: the tickets
//! service's `announcement.published` ("Avísame cuando…") names the linked
//! accounts it also goes to, and the outbound reactor (`publish`) records
//! a publication for it and queues one post per account; the delivery
//! worker posts them as it posts the staff's publications
//! ([`crate::publications`]). [`compose`] says what the post says on each
//! network.
//!
//! Exactly once: the publication's id is derived from the announcement's
//! ([`publication_id`]) and is the idempotency key of its request, so a
//! redelivered event records nothing new; the posts are queued in the
//! reactor's transaction, with the subscription's checkpoint, under ids
//! derived from the publication and the account. A crash before the
//! checkpoint queues them on redelivery (the request, already recorded,
//! is not recorded again); a redelivery after it queues nothing new.
//!
//! Accounts are looked up in the announcement's tenant only: one that is
//! unlinked, or is not the tenant's (the tickets service checks when it
//! publishes; this service does not rely on it), gets a failed post saying
//! why, and nothing is posted on it.
//!
//! What this module must not do: write to the tickets' streams, or call a
//! network (the delivery worker does).

use chrono::Utc;
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, CommandError, DomainEvent, RecordedEvent};
use ventanilla_kernel::Actor;
use ventanilla_postgres::TenantTx;
use ventanilla_social_domain::account::Network;
use ventanilla_social_domain::publication::{PublicationCommand, TEXT_MAX};
use ventanilla_tickets_domain::announcement::{AnnouncementEvent, Published};

use crate::connector::Post;
use crate::publications::{self, Publications};
use crate::x;

/// The event type this module reads.
pub const PUBLISHED: &str = "announcement.published";

/// Between the title, the body and the link.
const BREAK: &str = "\n\n";

/// Where a text was cut.
const ELLIPSIS: &str = "…";

/// The id of the publication of announcement `announcement` (the uuid of
/// its `announcement-<uuid>` stream): where its posts are shown
/// ([`Publications::show`]).
pub fn publication_id(announcement: Uuid) -> Uuid {
    Uuid::new_v5(&announcement, b"publication")
}

/// What an announcement says, as its posts are composed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Content<'a> {
    /// Its title.
    pub title: &'a str,
    /// Its text.
    pub body: &'a str,
    /// A link, `http(s)`.
    pub link: Option<&'a str>,
    /// An image, `https`.
    pub image_url: Option<&'a str>,
}

impl<'a> Content<'a> {
    /// The content of a published announcement.
    pub fn of(p: &'a Published) -> Self {
        Self {
            title: &p.title,
            body: &p.body,
            link: p.link.as_deref(),
            image_url: p.image_url.as_deref(),
        }
    }
}

/// The post of `content` on `network`:
///
/// - Facebook: the title, a blank line and the body (cut to fit
///   [`TEXT_MAX`] characters), the link as the post's link. With an image,
///   a photo post of it whose caption ends with the link (a photo post has
///   no link of its own).
/// - X: the title, a blank line, as much of the body as fits, and the link
///   after a blank line, within [`x::MAX_POST_LENGTH`] as X counts
///   ([`x::weighted_length`]: a URL is 23, an accented letter 1); the
///   image is ignored (X takes media only as uploaded bytes).
/// - Instagram: as on Facebook, without the image; the connector refuses
///   it (Instagram publishes no text-only post) and the post fails saying
///   so.
///
/// - WhatsApp: as on Facebook; the connector refuses it (WhatsApp has no
///   public posts).
/// - Mastodon: as on X, within 500 characters as Mastodon counts (a URL is
///   23), the link after a blank line (its preview card shows).
/// - Bluesky: as on X, within 300 characters, the link after a blank line.
/// - Telegram: the title, a blank line and the body in a message to the
///   bot's channel, the link after it (with its preview).
///
/// A text too long is cut at a word boundary, with "…".
pub fn compose(network: Network, content: &Content<'_>) -> Post {
    let chars = |s: &str| s.chars().count();
    let (title, body, link) = (content.title, content.body, content.link);
    match (network, content.image_url) {
        (Network::Facebook, Some(image)) => Post {
            text: layout(title, body, link, TEXT_MAX, chars),
            link: None,
            image_url: Some(image.to_owned()),
        },
        (Network::Facebook | Network::Instagram | Network::WhatsApp | Network::Email, _) => Post {
            text: layout(title, body, None, TEXT_MAX, chars),
            link: link.map(str::to_owned),
            image_url: None,
        },
        (Network::X, _) => Post {
            text: layout(title, body, link, x::MAX_POST_LENGTH, x::weighted_length),
            link: None,
            image_url: None,
        },
        (Network::Mastodon, _) => Post {
            // The connector adds the link after a blank line.
            text: layout(
                title,
                body,
                None,
                crate::mastodon::MAX_STATUS_LENGTH
                    - link.map_or(0, |l| crate::mastodon::status_length(l) + 2),
                crate::mastodon::status_length,
            ),
            link: link.map(str::to_owned),
            image_url: None,
        },
        (Network::Bluesky, _) => Post {
            // The connector adds the link after a blank line (a facet).
            text: layout(
                title,
                body,
                None,
                crate::bluesky::MAX_GRAPHEMES - link.map_or(0, |l| chars(l) + 2),
                chars,
            ),
            link: link.map(str::to_owned),
            image_url: None,
        },
        (Network::Telegram, _) => Post {
            text: layout(
                title,
                body,
                None,
                crate::telegram::MAX_MESSAGE_LENGTH - 600,
                chars,
            ),
            link: link.map(str::to_owned),
            image_url: None,
        },
    }
}

/// `title`, a blank line, `body`, and `tail` after another blank line, in
/// at most `max` as `weight` counts: the tail whole, then the title (cut,
/// and the body left out, only if it alone is too long), then as much of
/// the body as fits.
fn layout(
    title: &str,
    body: &str,
    tail: Option<&str>,
    max: usize,
    weight: impl Fn(&str) -> usize,
) -> String {
    let tail = tail
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| format!("{BREAK}{t}"))
        .unwrap_or_default();
    let room = max.saturating_sub(weight(&tail));
    let (title, body) = (title.trim(), body.trim());
    let whole = join(title, body);
    let head = if weight(&whole) <= room {
        whole
    } else if weight(title) > room {
        fit(title, room, &weight)
    } else {
        let left = room.saturating_sub(weight(title) + weight(BREAK));
        join(title, &fit(body, left, &weight))
    };
    let out = format!("{head}{tail}");
    if weight(&out) <= max {
        out
    } else {
        // Not reached with the networks' counts (they add up over words);
        // kept so that nothing too long is ever queued.
        fit(&out, max, &weight)
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (_, true) => a.to_owned(),
        (true, false) => b.to_owned(),
        (false, false) => format!("{a}{BREAK}{b}"),
    }
}

/// `text` if it weighs at most `max`; else its longest beginning that ends
/// a word and, with "…" added, does (cut inside the first word if even that
/// is too long; empty if nothing fits). Trailing punctuation before the
/// cut is dropped.
fn fit(text: &str, max: usize, weight: impl Fn(&str) -> usize) -> String {
    if weight(text) <= max {
        return text.to_owned();
    }
    let Some(room) = max.checked_sub(weight(ELLIPSIS)) else {
        return String::new();
    };
    // A beginning weighs no less than a shorter one: search the longest.
    let word_ends: Vec<usize> = text
        .char_indices()
        .filter(|&(i, c)| i > 0 && c.is_whitespace())
        .map(|(i, _)| i)
        .collect();
    let k = word_ends.partition_point(|&end| weight(text[..end].trim_end()) <= room);
    let cut = if k > 0 {
        &text[..word_ends[k - 1]]
    } else {
        let char_ends: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
        let k = char_ends.partition_point(|&end| weight(&text[..end]) <= room);
        if k > 0 { &text[..char_ends[k - 1]] } else { "" }
    };
    let cut = cut.trim_end_matches(|c: char| {
        c.is_whitespace() || matches!(c, ',' | ';' | ':' | '.' | '-' | '–' | '—' | '(' | '¿' | '¡')
    });
    if cut.is_empty() {
        String::new()
    } else {
        format!("{cut}{ELLIPSIS}")
    }
}

/// Has the announcement `e` (`announcement.published`) posted on the
/// accounts it names, in the reactor's transaction `tx`: records its
/// publication (once, whatever the redeliveries) — the posts on accounts
/// that cannot be used failed at once — and queues the pending posts.
/// Nothing when it names no account.
pub(crate) async fn publish(
    publications: &Publications,
    tx: &mut TenantTx<'_>,
    e: &RecordedEvent,
) -> anyhow::Result<()> {
    let AnnouncementEvent::Published(p) =
        AnnouncementEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
    if p.accounts.is_empty() {
        return Ok(());
    }
    let Some(announcement) = e
        .stream
        .as_str()
        .strip_prefix("announcement-")
        .and_then(|s| Uuid::parse_str(s).ok())
    else {
        return Ok(());
    };
    let tenant = tx.tenant();
    let id = publication_id(announcement);
    let content = Content::of(&p);
    let targets = publications.targets(tenant, &p.accounts).await?;
    let command = PublicationCommand::Request {
        // What the publication records: the full text, as on Facebook.
        text: compose(
            Network::Facebook,
            &Content {
                image_url: None,
                ..content
            },
        )
        .text,
        link: p.link.clone(),
        accounts: targets
            .iter()
            .filter(|t| t.unavailable.is_none())
            .map(|t| t.account)
            .collect(),
        unavailable: targets
            .iter()
            .filter_map(|t| t.unavailable.map(|why| (t.account, why.to_owned())))
            .collect(),
    };
    let now = Utc::now();
    let mut ctx = CommandContext::new(tenant, now, Actor::system("social-announcements"))
        .with_idempotency_key(id);
    ctx.correlation_id = e.metadata.correlation_id;
    ctx.causation_id = Some(e.id.into_uuid());
    let state = match publications.record(&ctx, id, &command).await {
        Ok(state) => state,
        // The same event would be refused again: retrying would stop the
        // subscription for good. Said loudly, and passed over.
        Err(refused @ (CommandError::Domain(_) | CommandError::Invalid(_))) => {
            tracing::error!(
                tenant_id = %tenant,
                announcement = %announcement,
                error = %refused,
                "the announcement's publication was refused; nothing is posted"
            );
            return Ok(());
        }
        Err(other) => return Err(other.into()),
    };
    let conn = tx.conn().await?;
    publications::queue_pending(
        conn,
        tenant,
        id,
        &state,
        &targets,
        |network| compose(network, &content),
        now,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const LINK: &str = "https://concello.example/avisos/auga-rua-nova-e-praza-maior?utm=1";

    fn chars(s: &str) -> usize {
        s.chars().count()
    }

    fn aviso<'a>(title: &'a str, body: &'a str) -> Content<'a> {
        Content {
            title,
            body,
            link: Some(LINK),
            image_url: None,
        }
    }

    #[test]
    fn facebook_gets_title_blank_line_body_and_the_link_as_link() {
        let post = compose(
            Network::Facebook,
            &aviso("Corte de auga", " Mañá, de 9 a 13 h, na rúa Nova. "),
        );
        assert_eq!(
            post,
            Post {
                text: "Corte de auga\n\nMañá, de 9 a 13 h, na rúa Nova.".into(),
                link: Some(LINK.into()),
                image_url: None,
            }
        );
    }

    #[test]
    fn with_an_image_facebook_gets_a_photo_whose_caption_ends_with_the_link() {
        let mut content = aviso("Corte de auga", "Mañá na rúa Nova.");
        content.image_url = Some("https://concello.example/auga.jpg");
        let post = compose(Network::Facebook, &content);
        assert_eq!(
            post,
            Post {
                text: format!("Corte de auga\n\nMañá na rúa Nova.\n\n{LINK}"),
                link: None,
                image_url: Some("https://concello.example/auga.jpg".into()),
            }
        );
        // Elsewhere the image is ignored.
        assert_eq!(compose(Network::X, &content).image_url, None);
        assert_eq!(compose(Network::Instagram, &content).image_url, None);
    }

    #[test]
    fn a_short_announcement_is_whole_on_x_with_the_link_last() {
        let post = compose(
            Network::X,
            &aviso("Corte de agua", "Mañana, de 9 a 13 h, en la calle Real."),
        );
        assert_eq!(
            post.text,
            format!("Corte de agua\n\nMañana, de 9 a 13 h, en la calle Real.\n\n{LINK}")
        );
        assert_eq!(post.link, None);
        assert_eq!(x::weighted_length(&post.text), 13 + 2 + 38 + 2 + 23);
    }

    #[test]
    fn a_long_body_is_cut_at_a_word_on_x_counting_characters_not_bytes() {
        let body = "Informámoslle de que o próximo martes haberá un corte de subministración \
                    de auga na rúa Nova, na praza Maior e nas rúas próximas, por mor das obras \
                    de renovación da rede. Pedimos desculpas polas molestias e agradecemos a \
                    súa comprensión. Máis información na oficina de atención á cidadanía, \
                    de luns a venres, de 9 a 14 horas, ou no teléfono 981 000 000.";
        let post = compose(Network::X, &aviso("Corte de auga o martes", body));
        let text = &post.text;
        let length = x::weighted_length(text);
        assert!(length <= 280, "{length}: {text}");
        assert!(
            length > 270,
            "as much of the body as fits: {length}: {text}"
        );
        assert!(
            text.len() > length,
            "accents are several bytes, one character"
        );
        assert!(text.starts_with("Corte de auga o martes\n\nInformámoslle de que"));
        let (head, link) = text.rsplit_once("\n\n").unwrap();
        assert_eq!(link, LINK);
        let kept = head.strip_suffix('…').unwrap();
        let kept = kept.strip_prefix("Corte de auga o martes\n\n").unwrap();
        assert!(body.starts_with(kept), "{kept}");
        // Cut at a word boundary: the next character of the body is a space
        // or punctuation, never the middle of a word.
        let next = body[kept.len()..].chars().next().unwrap();
        assert!(
            next.is_whitespace() || next == ',' || next == '.',
            "{next:?}"
        );
    }

    #[test]
    fn on_x_without_a_link_the_body_has_the_whole_post() {
        let body = "ñ".repeat(150) + " " + &"á".repeat(150);
        let content = Content {
            link: None,
            ..aviso("Aviso", &body)
        };
        let text = compose(Network::X, &content).text;
        // The second word does not fit: the first one stays, whole.
        assert_eq!(text, format!("Aviso\n\n{}…", "ñ".repeat(150)));
        assert_eq!(chars(&text), 5 + 2 + 150 + 1);
        assert_eq!(text.len(), 5 + 2 + 300 + 3, "bytes are not what is counted");
    }

    #[test]
    fn a_title_too_long_for_x_is_cut_and_the_link_kept() {
        let title = "市役所のお知らせ ".repeat(40);
        let text = compose(Network::X, &aviso(title.trim(), "cuerpo")).text;
        assert!(x::weighted_length(&text) <= 280, "{text}");
        assert!(text.ends_with(&format!("…\n\n{LINK}")), "{text}");
        assert!(!text.contains("cuerpo"));
    }

    #[test]
    fn facebook_cuts_a_body_over_the_longest_text() {
        let body = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(200);
        let post = compose(Network::Facebook, &aviso("Bando municipal", &body));
        assert!(chars(&post.text) <= TEXT_MAX);
        assert!(chars(&post.text) > TEXT_MAX - 20);
        let kept = post.text.strip_suffix('…').unwrap();
        let whole = format!("Bando municipal\n\n{}", body.trim());
        assert!(whole.starts_with(kept));
        assert!(whole[kept.len()..].starts_with(' '), "cut at a word");
        assert_eq!(post.link.as_deref(), Some(LINK));
    }

    #[test]
    fn fit_cuts_at_words_or_inside_a_lone_word() {
        assert_eq!(fit("Convocatoria aberta", 50, chars), "Convocatoria aberta");
        assert_eq!(fit("Convocatoria aberta", 18, chars), "Convocatoria…");
        assert_eq!(fit("Praza, rúa e camiño", 12, chars), "Praza, rúa…");
        assert_eq!(fit("Praza, rúa e camiño", 10, chars), "Praza…");
        assert_eq!(fit("Inscrición", 5, chars), "Insc…");
        assert_eq!(fit("Inscrición", 0, chars), "");
        // "…" weighs 2 on X.
        assert_eq!(fit("abc def", 5, x::weighted_length), "abc…");
    }

    #[test]
    fn the_publication_id_is_derived_from_the_announcement() {
        let a = Uuid::from_u128(7);
        assert_eq!(publication_id(a), publication_id(a));
        assert_ne!(publication_id(a), publication_id(Uuid::from_u128(8)));
        assert_ne!(publication_id(a), a);
    }
}
