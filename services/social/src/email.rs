//! The e-mail connector: citizens write to a council's contact address, the
//! platform's SMTP receiver (`ventanilla_mail::receiver`) or an IMAP poller
//! hands the raw message here, and agents' answers go back as replies that
//! the citizen's mail program shows in the same conversation.
//!
//! What it does:
//! - reads one raw message ([`parse`], with `mail-parser`: MIME, charsets,
//!   RFC 2047 words, quoted-printable and base64) into what the citizen
//!   wrote ([`Parsed::Message`]): the Message-ID as the platform id, the
//!   thread from `References` / `In-Reply-To`, the author from `From`, the
//!   text (the `text/plain` part, or text made from the HTML) with the
//!   quoted reply history cut off, a ticket reference found in the subject
//!   as a threading fallback, and the attachments as metadata only;
//! - tells apart what must never open a ticket nor be answered: automatic
//!   mail (`Auto-Submitted` other than `no`, RFC 3834; `Precedence: bulk`,
//!   `junk` or `list`; `X-Autoreply` / `X-Autorespond`), reports (read
//!   receipts, delivery reports) and mail from our own addresses
//!   ([`Parsed::Ignored`]) — so no mail loop can form with an
//!   auto-responder, a mailing list or ourselves; delivery failures
//!   (DSNs, RFC 3464) come back as [`Parsed::Bounce`] with the failed
//!   message's id, so the platform can mark that reply failed;
//! - writes an agent's reply ([`reply_mail`]) with `In-Reply-To`,
//!   `References` and a `Re: [REF] subject`, ready for
//!   `ventanilla_mail::Mailer`.
//!
//! What it must not do: keep state, store or send anything (its callers
//! do), read attachment contents (only their metadata), or auto-reply to
//! anything: every reply it writes is an agent's.

use std::fmt;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders as _, PartType};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;
use ventanilla_mail::{Address, OutgoingMail};
use ventanilla_social_domain::inbound::{Author, MessageKind};
use ventanilla_tickets_domain::values::{BODY_MAX, Reference};

use crate::connector::{Inbound, WebhookError};

/// The channel name of e-mail messages.
pub const CHANNEL: &str = "email";

/// The largest attachment whose metadata is kept as usable; a larger one is
/// listed with [`AttachmentMeta::too_large`] set.
pub const MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;

/// Most message ids a reply's `References` carries: the thread's first
/// (its root, which threading relies on) and the latest ones.
pub const MAX_REFERENCES: usize = 20;

/// Longest message id accepted (as the outgoing mailer does).
const MAX_MESSAGE_ID: usize = 900;

/// Longest subject kept, in characters.
const MAX_SUBJECT: usize = 250;

/// What a raw message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
// One value per message, never kept in bulk: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    /// A citizen wrote: record it (and open or continue a ticket).
    Message {
        /// The message in the connectors' common shape (channel `email`,
        /// a private message).
        inbound: Inbound,
        /// The subject, decoded (`""` when there is none).
        subject: String,
        /// The `References` ids, oldest first, without angle brackets: the
        /// platform matches them against the ids of its own replies.
        references: Vec<String>,
        /// A ticket reference (`LUGO-2026-000123`) found in the subject,
        /// for when the citizen's program dropped the threading headers.
        reference_hint: Option<String>,
        /// Where the citizen asks replies to go (`Reply-To`), when it is
        /// not the author's address.
        reply_to: Option<String>,
        /// The attachments, as metadata only.
        attachments: Vec<AttachmentMeta>,
    },
    /// A delivery status notification saying one of our messages did not
    /// reach its recipient (or is delayed): never a ticket, never answered.
    Bounce {
        /// The `Message-ID` of the message that failed, without brackets,
        /// when the report includes its headers.
        original_message_id: Option<String>,
        /// The recipient it failed for (`Final-Recipient`).
        recipient: Option<String>,
        /// `true` when the server gave up (`Action: failed`); `false` for a
        /// delay warning (`Action: delayed`), after which it keeps trying.
        permanent: bool,
        /// What the remote server said (`Diagnostic-Code`), or the status.
        diagnostic: String,
    },
    /// Mail that must not open a ticket nor be answered.
    Ignored {
        /// Why.
        reason: IgnoreReason,
    },
}

/// Why a message is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreReason {
    /// `Auto-Submitted` with a value other than `no` (an out-of-office, an
    /// auto-responder, a notification; RFC 3834).
    AutoSubmitted {
        /// The header's value.
        value: String,
    },
    /// `Precedence: bulk`, `junk` or `list`.
    Precedence {
        /// The header's value.
        value: String,
    },
    /// An auto-responder's own marker header.
    AutoReplyHeader {
        /// The header (`X-Autoreply`, `X-Autorespond`…).
        header: &'static str,
    },
    /// Sent from one of our own addresses: answering would loop.
    OwnAddress {
        /// The address.
        address: String,
    },
    /// A report that is not a delivery failure: a read receipt
    /// (`disposition-notification`), a successful delivery report…
    Report {
        /// The report type, with the action for a delivery report
        /// (`delivery-status: delivered`).
        kind: String,
    },
    /// From `MAILER-DAEMON` without a delivery report in it (an old-style
    /// bounce): nobody to answer.
    MailerDaemon,
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AutoSubmitted { value } => write!(f, "automatic mail (Auto-Submitted: {value})"),
            Self::Precedence { value } => write!(f, "bulk or list mail (Precedence: {value})"),
            Self::AutoReplyHeader { header } => write!(f, "an auto-reply ({header})"),
            Self::OwnAddress { address } => {
                write!(f, "sent from our own address {address} (a mail loop)")
            }
            Self::Report { kind } => write!(f, "a report ({kind}), not a message"),
            Self::MailerDaemon => f.write_str("a bounce from MAILER-DAEMON without a report"),
        }
    }
}

/// An attachment, described but not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentMeta {
    /// Its file name, if it has one (path separators and control
    /// characters removed).
    pub filename: Option<String>,
    /// Its MIME type, lower case (`image/jpeg`; `application/octet-stream`
    /// when not given).
    pub mime_type: String,
    /// Its decoded size in bytes.
    pub size: usize,
    /// Over [`MAX_ATTACHMENT_BYTES`]: left out (the citizen should be asked
    /// for a smaller file or a link).
    pub too_large: bool,
}

fn malformed(problem: impl Into<String>) -> WebhookError {
    WebhookError::Malformed {
        network: CHANNEL,
        problem: problem.into(),
    }
}

/// Reads one raw message (RFC 5322 bytes, as received) sent to the
/// council. `own_addresses` are the addresses the platform sends from (mail
/// from them is a loop); `max_bytes` is the largest message accepted.
///
/// Errors: a message over `max_bytes`, or one that is not a mail (no
/// headers, no usable `From`), is [`WebhookError::Malformed`] with the
/// reason.
pub fn parse(
    raw: &[u8],
    own_addresses: &[String],
    max_bytes: usize,
) -> Result<Parsed, WebhookError> {
    parse_with(
        raw,
        own_addresses,
        max_bytes,
        MAX_ATTACHMENT_BYTES,
        Utc::now(),
    )
}

fn parse_with(
    raw: &[u8],
    own_addresses: &[String],
    max_bytes: usize,
    max_attachment: usize,
    now: DateTime<Utc>,
) -> Result<Parsed, WebhookError> {
    if raw.len() > max_bytes {
        return Err(malformed(format!(
            "the message is {} bytes, over the limit of {max_bytes} bytes; it is refused",
            raw.len()
        )));
    }
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(malformed("the message is empty"));
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| malformed("it cannot be read as an RFC 5322 message"))?;
    if message.headers().is_empty() {
        return Err(malformed("the message has no header"));
    }
    let from = message
        .from()
        .and_then(|from| from.first())
        .and_then(|from| from.address())
        .and_then(normalized_address);

    if let Some(report) = report(&message, from.as_deref()) {
        return Ok(report);
    }
    if let Some(reason) = automatic(&message) {
        return Ok(Parsed::Ignored { reason });
    }
    let Some(from) = from else {
        return Err(malformed("the message has no usable From address"));
    };
    if own_addresses
        .iter()
        .any(|own| own.trim().eq_ignore_ascii_case(&from))
    {
        return Ok(Parsed::Ignored {
            reason: IgnoreReason::OwnAddress { address: from },
        });
    }
    if is_mailer_daemon(&from) {
        return Ok(Parsed::Ignored {
            reason: IgnoreReason::MailerDaemon,
        });
    }

    let platform_id = message
        .message_id()
        .and_then(message_id)
        .unwrap_or_else(|| derived_id(raw));
    let references = ids(message.references());
    let in_reply_to = ids(message.in_reply_to()).into_iter().next();
    let thread = references
        .first()
        .or(in_reply_to.as_ref())
        .cloned()
        .unwrap_or_else(|| platform_id.clone());
    let name = message
        .from()
        .and_then(|from| from.first())
        .and_then(|from| from.name())
        .map(|name| one_line(name, 200))
        .filter(|name| !name.is_empty());
    let subject = message
        .subject()
        .map(|subject| one_line(subject, MAX_SUBJECT))
        .unwrap_or_default();
    let reply_to = message
        .reply_to()
        .and_then(|reply_to| reply_to.first())
        .and_then(|reply_to| reply_to.address())
        .and_then(normalized_address)
        .filter(|reply_to| !reply_to.eq_ignore_ascii_case(&from));
    let sent_at = message
        .date()
        .and_then(|date| Utc.timestamp_opt(date.to_timestamp(), 0).single())
        .filter(|date| *date <= now + Duration::days(1))
        .unwrap_or(now);
    let text = if is_forward(&subject) {
        clean_text(&body_text(&message))
    } else {
        trim_quoted(&clean_text(&body_text(&message)))
    };

    Ok(Parsed::Message {
        inbound: Inbound {
            channel: CHANNEL,
            kind: MessageKind::Direct,
            platform_id,
            thread,
            in_reply_to,
            author: Author {
                platform_user_id: from.clone(),
                handle: Some(from),
                name,
            },
            text: truncated(text, BODY_MAX),
            sent_at,
        },
        reference_hint: reference_hint(&subject),
        subject,
        references,
        reply_to,
        attachments: attachments(&message, max_attachment),
    })
}

// ---------------------------------------------------------------------------
// Automatic mail and reports
// ---------------------------------------------------------------------------

/// A top-level header's value, unfolded and trimmed, by case-insensitive
/// name.
fn header(message: &Message<'_>, name: &str) -> Option<String> {
    let found = message
        .headers()
        .iter()
        .find(|header| header.name().eq_ignore_ascii_case(name))?;
    let start = usize::try_from(found.offset_start()).ok()?;
    let end = usize::try_from(found.offset_end()).ok()?;
    let raw = message.raw_message().get(start..end)?;
    let value: String = String::from_utf8_lossy(raw)
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Some(value)
}

/// Why a message is automatic (RFC 3834 and common practice), if it is.
fn automatic(message: &Message<'_>) -> Option<IgnoreReason> {
    if let Some(value) = header(message, "Auto-Submitted") {
        let keyword = value.split(';').next().unwrap_or_default().trim();
        if !keyword.is_empty() && !keyword.eq_ignore_ascii_case("no") {
            return Some(IgnoreReason::AutoSubmitted { value });
        }
    }
    if let Some(value) = header(message, "Precedence") {
        let keyword = value.trim().to_ascii_lowercase();
        if matches!(keyword.as_str(), "bulk" | "junk" | "list") {
            return Some(IgnoreReason::Precedence { value });
        }
    }
    for name in ["X-Autoreply", "X-Autorespond", "X-Autoresponder"] {
        if let Some(value) = header(message, name) {
            let value = value.trim();
            if !(value.eq_ignore_ascii_case("no") || value.eq_ignore_ascii_case("false")) {
                return Some(IgnoreReason::AutoReplyHeader { header: name });
            }
        }
    }
    None
}

fn is_mailer_daemon(address: &str) -> bool {
    address
        .split('@')
        .next()
        .is_some_and(|local| local.eq_ignore_ascii_case("mailer-daemon"))
}

fn is_postmaster(address: &str) -> bool {
    address
        .split('@')
        .next()
        .is_some_and(|local| local.eq_ignore_ascii_case("postmaster"))
}

/// `type/subtype`, lower case, of a `Content-Type`.
fn mime_type(content_type: Option<&mail_parser::ContentType<'_>>) -> Option<String> {
    let content_type = content_type?;
    Some(
        format!(
            "{}/{}",
            content_type.ctype(),
            content_type.subtype().unwrap_or_default()
        )
        .to_ascii_lowercase(),
    )
}

const DSN_TYPES: [&str; 2] = ["message/delivery-status", "message/global-delivery-status"];

/// A report (`multipart/report`), or a bounce from `MAILER-DAEMON` /
/// `postmaster` with a delivery report in it: what it means for us.
fn report(message: &Message<'_>, from: Option<&str>) -> Option<Parsed> {
    let root_type = mime_type(message.content_type());
    let has_dsn_part = || {
        message.parts.iter().any(|part| {
            mime_type(part.content_type()).is_some_and(|mime| DSN_TYPES.contains(&mime.as_str()))
        })
    };
    let report_type = if root_type.as_deref() == Some("multipart/report") {
        message
            .content_type()
            .and_then(|content_type| content_type.attribute("report-type"))
            .map(str::to_ascii_lowercase)
            .unwrap_or_default()
    } else if from.is_some_and(|from| is_mailer_daemon(from) || is_postmaster(from))
        && has_dsn_part()
    {
        "delivery-status".to_owned()
    } else {
        return None;
    };
    if report_type != "delivery-status" && report_type != "global-delivery-status" {
        let kind = if report_type.is_empty() {
            "unknown".to_owned()
        } else {
            report_type
        };
        return Some(Parsed::Ignored {
            reason: IgnoreReason::Report { kind },
        });
    }
    Some(delivery_status(message))
}

/// Reads a DSN (RFC 3464): the first recipient that failed (or else was
/// delayed), and the failed message's id from the returned headers.
fn delivery_status(message: &Message<'_>) -> Parsed {
    let fields = message
        .parts
        .iter()
        .find(|part| {
            mime_type(part.content_type()).is_some_and(|mime| DSN_TYPES.contains(&mime.as_str()))
        })
        .map(|part| String::from_utf8_lossy(part.contents()).into_owned())
        .unwrap_or_default();
    let blocks = dsn_blocks(&fields);
    // The first block is about the message; the others, one per recipient.
    let recipients = blocks.get(1..).unwrap_or_default();
    let action = |block: &Vec<(String, String)>| dsn_field(block, "action").to_ascii_lowercase();
    let chosen = recipients
        .iter()
        .find(|block| action(block) == "failed")
        .or_else(|| recipients.iter().find(|block| action(block) == "delayed"));
    let Some(block) = chosen else {
        let actions: Vec<String> = recipients.iter().map(action).collect();
        let kind = match actions.first() {
            Some(first) if !first.is_empty() => format!("delivery-status: {first}"),
            _ => "delivery-status".to_owned(),
        };
        return Parsed::Ignored {
            reason: IgnoreReason::Report { kind },
        };
    };
    let recipient = [
        dsn_field(block, "final-recipient"),
        dsn_field(block, "original-recipient"),
    ]
    .into_iter()
    .map(|value| {
        let address = value.split_once(';').map_or(value, |(_, address)| address);
        address
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim()
    })
    .find(|address| !address.is_empty())
    .map(str::to_owned);
    let status = dsn_field(block, "status");
    let diagnostic = dsn_field(block, "diagnostic-code");
    let diagnostic = diagnostic
        .split_once(';')
        .map_or(diagnostic, |(_, text)| text)
        .trim();
    let diagnostic = if diagnostic.is_empty() {
        format!("{} (status {status})", action(block))
    } else {
        one_line(diagnostic, 1000)
    };
    Parsed::Bounce {
        original_message_id: original_message_id(message),
        recipient,
        permanent: action(block) == "failed",
        diagnostic,
    }
}

/// The field blocks of a `message/delivery-status` body: lines unfolded,
/// names lower case.
fn dsn_blocks(body: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks: Vec<Vec<(String, String)>> = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks
}

fn dsn_field<'a>(block: &'a [(String, String)], name: &str) -> &'a str {
    block
        .iter()
        .find(|(field, _)| field == name)
        .map_or("", |(_, value)| value.as_str())
}

/// The `Message-ID` of the message a DSN returns (whole, or its headers).
fn original_message_id(message: &Message<'_>) -> Option<String> {
    const RETURNED: [&str; 5] = [
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global-headers",
    ];
    message.parts.iter().find_map(|part| {
        let mime = mime_type(part.content_type())?;
        if !RETURNED.contains(&mime.as_str()) {
            return None;
        }
        match part.message() {
            Some(returned) => returned.message_id().and_then(message_id),
            None => MessageParser::default()
                .parse_headers(part.contents())
                .and_then(|headers| headers.message_id().and_then(message_id)),
        }
    })
}

// ---------------------------------------------------------------------------
// Ids, addresses, subject
// ---------------------------------------------------------------------------

/// A message id without brackets, if it has the shape the outgoing mailer
/// accepts (`left@right`, printable ASCII, no spaces or brackets).
fn message_id(id: &str) -> Option<String> {
    let id = id.trim();
    let id = id
        .strip_prefix('<')
        .and_then(|id| id.strip_suffix('>'))
        .unwrap_or(id);
    let valid = id.len() <= MAX_MESSAGE_ID
        && id
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '<' && c != '>')
        && id
            .split_once('@')
            .is_some_and(|(left, right)| !left.is_empty() && !right.is_empty());
    valid.then(|| id.to_owned())
}

/// A stable id for a message without a usable `Message-ID`: the SHA-256 of
/// its bytes, under the reserved `.invalid` domain.
fn derived_id(raw: &[u8]) -> String {
    format!(
        "{}@sha256.invalid",
        hex::encode(Sha256::digest(raw).as_slice())
    )
}

/// The valid ids of a `References` / `In-Reply-To` header, in order, once
/// each.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    let raw: Vec<&str> = match value {
        HeaderValue::Text(id) => vec![id.as_ref()],
        HeaderValue::TextList(ids) => ids.iter().map(AsRef::as_ref).collect(),
        _ => Vec::new(),
    };
    let mut ids: Vec<String> = Vec::with_capacity(raw.len());
    for id in raw.into_iter().filter_map(message_id) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// `local@domain` with the domain lower-cased; `None` when it is not an
/// address.
fn normalized_address(address: &str) -> Option<String> {
    let address = address.trim();
    let (local, domain) = address.rsplit_once('@')?;
    let valid = !local.is_empty()
        && !domain.is_empty()
        && address.len() <= 254
        && !address.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then(|| format!("{local}@{}", domain.to_lowercase()))
}

/// One line: control characters (line breaks included) become spaces, runs
/// of spaces one, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let spaced: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let joined = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
    truncated(joined, max)
}

/// At most `max` characters, ending in `…` when cut.
fn truncated(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A ticket reference in the subject (`[LUGO-2026-000123]`, or the bare
/// token), upper case; a bracketed one wins.
pub fn reference_hint(subject: &str) -> Option<String> {
    let token = |word: &str| {
        let word = word.trim().trim_start_matches('#');
        Reference::parse("subject", word)
            .ok()
            .map(|reference| reference.as_str().to_owned())
    };
    let bracketed = subject.split('[').skip(1).find_map(|after| {
        let inside = after.split(']').next()?;
        token(inside)
    });
    bracketed.or_else(|| {
        subject
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .find_map(token)
    })
}

/// Whether a subject says the message is forwarded (then nothing is cut
/// from it: what was forwarded is the point).
fn is_forward(subject: &str) -> bool {
    let mut rest = subject.trim_start();
    while let Some((prefix, after)) = reply_prefix(rest) {
        let prefix = prefix.to_ascii_lowercase();
        if matches!(prefix.as_str(), "fwd" | "fw" | "rv" | "enc" | "wg" | "tr") {
            return true;
        }
        rest = after;
    }
    false
}

/// A leading `Re:` / `Fwd:`-like prefix (`RE :`, `Re[2]:`, `AW:`…): the
/// prefix word and what follows it.
fn reply_prefix(subject: &str) -> Option<(&str, &str)> {
    const PREFIXES: [&str; 12] = [
        "re", "fwd", "fw", "rv", "enc", "res", "aw", "wg", "sv", "vs", "antw", "tr",
    ];
    let word_end = subject
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(subject.len());
    let word = subject.get(..word_end)?;
    if !PREFIXES
        .iter()
        .any(|prefix| word.eq_ignore_ascii_case(prefix))
    {
        return None;
    }
    let mut rest = subject.get(word_end..)?;
    // A counter: `Re[2]:`, `Re(2):`, `Re^2:`.
    if let Some(counted) = rest.strip_prefix(['[', '(', '^']) {
        let digits = counted
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(counted.len());
        rest = counted.get(digits..)?.trim_start_matches([']', ')']);
    }
    let rest = rest.trim_start_matches(' ').strip_prefix(':')?;
    Some((word, rest.trim_start()))
}

// ---------------------------------------------------------------------------
// Body
// ---------------------------------------------------------------------------

/// The message's text: its text parts (HTML ones made text), joined.
fn body_text(message: &Message<'_>) -> String {
    let mut texts: Vec<String> = Vec::new();
    for part in message.text_bodies() {
        match &part.body {
            PartType::Text(text) => {
                let flowed = part
                    .content_type()
                    .and_then(|content_type| content_type.attribute("format"))
                    .is_some_and(|format| format.eq_ignore_ascii_case("flowed"));
                let delsp = part
                    .content_type()
                    .and_then(|content_type| content_type.attribute("delsp"))
                    .is_some_and(|delsp| delsp.eq_ignore_ascii_case("yes"));
                let text = text.replace("\r\n", "\n");
                texts.push(if flowed { unflow(&text, delsp) } else { text });
            }
            PartType::Html(html) => texts.push(html_to_text(html)),
            _ => {}
        }
    }
    if texts.is_empty() {
        for part in message.html_bodies() {
            if let PartType::Html(html) = &part.body {
                texts.push(html_to_text(html));
            }
        }
    }
    texts.join("\n")
}

/// Undoes `format=flowed` (RFC 3676) for unquoted lines: a line ending in a
/// space continues on the next one (the signature separator `-- ` does
/// not).
fn unflow(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut continuing = false;
    for line in text.split('\n') {
        let line = if continuing {
            line
        } else {
            // Space-stuffing (RFC 3676 §4.4).
            line.strip_prefix(' ').unwrap_or(line)
        };
        let soft = line.ends_with(' ') && line != "-- " && !line.starts_with('>');
        if soft {
            out.push_str(if delsp {
                line.strip_suffix(' ').unwrap_or(line)
            } else {
                line
            });
        } else {
            out.push_str(line);
            out.push('\n');
        }
        continuing = soft;
    }
    // `split` gave one more segment than there are line ends.
    if out.ends_with('\n') {
        out.pop();
    }
    out
}

/// Line ends as `\n`, no control characters but tabs, no trailing spaces,
/// no blank lines at either end.
fn clean_text(text: &str) -> String {
    let lines: Vec<String> = text
        .replace("\r\n", "\n")
        .split(['\n', '\r'])
        .map(|line| {
            line.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect();
    lines.join("\n").trim_matches('\n').to_owned()
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// `On … wrote:`-like attribution lines, in the languages citizens write
/// in: the opening word and the closing words.
const ATTRIBUTIONS: [(&str, &str); 9] = [
    ("On ", "wrote:"),
    ("El ", "escribió:"),
    ("El ", "va escriure:"),
    ("El ", "escribiu:"),
    ("O ", "escribiu:"),
    ("Em ", "escreveu:"),
    ("Le ", "a écrit :"),
    ("Le ", "a écrit:"),
    ("Am ", "schrieb:"),
];

/// How many lines (1 or 2: mail programs wrap long ones) form an
/// attribution starting at `lines[at]`, if one does.
fn attribution_at(lines: &[&str], at: usize) -> Option<usize> {
    let first = lines.get(at)?.trim();
    let matches = |start: &str, end: &str| {
        ATTRIBUTIONS
            .iter()
            .any(|(opening, closing)| start.starts_with(opening) && end.ends_with(closing))
    };
    if matches(first, first) || first.ends_with("idatzi zuen:") {
        return Some(1);
    }
    let second = lines.get(at + 1)?.trim();
    (!second.is_empty() && matches(first, second)).then_some(2)
}

/// Whether the next non-blank line from `from` is quoted.
fn quote_follows(lines: &[&str], from: usize) -> bool {
    lines
        .get(from..)
        .and_then(|rest| rest.iter().find(|line| !is_blank(line)))
        .is_some_and(|line| is_quoted(line))
}

/// Outlook's way: an optional separator (`-----Original Message-----`,
/// `-----Mensaje original-----`, a line of underscores), then a header
/// block (`De:` / `From:`, `Enviado:` / `Sent:`, `Asunto:` / `Subject:`…):
/// whether one starts at `at`.
fn outlook_header_at(lines: &[&str], at: usize) -> bool {
    let line = lines.get(at).map_or("", |line| line.trim());
    let lower = line.to_lowercase();
    let separator = (lower.starts_with("-----")
        && (lower.contains("original message")
            || lower.contains("mensaje original")
            || lower.contains("mensaxe orixinal")
            || lower.contains("missatge original")
            || lower.contains("mensagem original")
            || lower.contains("message d'origine")))
        || (line.len() >= 20 && line.chars().all(|c| c == '_'));
    let header_start = if separator { at + 1 } else { at };
    let starts_with_any = |line: &str, names: &[&str]| {
        let line = line.trim().to_lowercase();
        names.iter().any(|name| line.starts_with(name))
    };
    let Some(from_line) = lines.get(header_start) else {
        return false;
    };
    if !starts_with_any(from_line, &["from:", "de:", "von:", "da:"]) {
        return false;
    }
    let block = lines
        .get(header_start + 1..(header_start + 6).min(lines.len()))
        .unwrap_or_default();
    let dated = block.iter().any(|line| {
        starts_with_any(
            line,
            &[
                "sent:",
                "date:",
                "enviado",
                "fecha:",
                "data:",
                "gesendet:",
                "envoyé",
            ],
        )
    });
    let titled = block.iter().any(|line| {
        starts_with_any(
            line,
            &[
                "subject:", "asunto:", "assunto:", "betreff:", "objet", "asunto :",
            ],
        )
    });
    dated && titled
}

/// A forwarded message's marker in the body.
fn forward_marker(line: &str) -> bool {
    let lower = line.to_lowercase();
    lower.contains("forwarded message")
        || lower.contains("mensaje reenviado")
        || lower.contains("mensaxe reenviada")
        || lower.contains("missatge reenviat")
        || lower.contains("mensagem encaminhada")
        || lower.contains("inicio del mensaje reenviado")
}

/// Cuts the quoted reply history off a citizen's text, conservatively:
/// - at the first attribution (`El … escribió:`) followed by quoted lines,
///   or Outlook's `De: / Enviado: / Asunto:` block, when the citizen wrote
///   something above it (top-posting);
/// - a quoted block at the end (with its attribution), when something
///   unquoted is left;
/// - a quoted block at the start (with its attribution), when the rest is
///   unquoted (bottom-posting).
///
/// Interleaved answers keep their quotes (they give the answers meaning),
/// a forwarded message is never cut, and a text that is all quote is kept
/// whole.
fn trim_quoted(text: &str) -> String {
    let all: Vec<&str> = text.lines().collect();
    if all.iter().any(|line| forward_marker(line)) {
        return text.to_owned();
    }
    let has_content = |lines: &[&str]| lines.iter().any(|line| !is_blank(line) && !is_quoted(line));

    // Top-posting: cut at the history's header.
    let mut end = all.len();
    for at in 0..all.len() {
        let header = match attribution_at(&all, at) {
            Some(span) if quote_follows(&all, at + span) => true,
            _ => outlook_header_at(&all, at),
        };
        if header && has_content(all.get(..at).unwrap_or_default()) {
            end = at;
            break;
        }
    }
    let mut lines: &[&str] = all.get(..end).unwrap_or_default();

    // A quoted block at the end, and its attribution.
    let mut cut = lines.len();
    while cut > 0
        && lines
            .get(cut - 1)
            .is_some_and(|line| is_blank(line) || is_quoted(line))
    {
        cut -= 1;
    }
    let quoted_tail = lines
        .get(cut..)
        .unwrap_or_default()
        .iter()
        .any(|line| is_quoted(line));
    if quoted_tail && has_content(lines.get(..cut).unwrap_or_default()) {
        lines = lines.get(..cut).unwrap_or_default();
        for span in [1, 2] {
            if let Some(at) = lines.len().checked_sub(span)
                && attribution_at(lines, at) == Some(span)
            {
                lines = lines.get(..at).unwrap_or_default();
                break;
            }
        }
    }

    // A quoted block at the start (after its attribution), when what
    // follows has no quotes at all.
    let mut start = 0;
    while lines.get(start).is_some_and(|line| is_blank(line)) {
        start += 1;
    }
    if let Some(span) = attribution_at(lines, start) {
        start += span;
    }
    let quote_start = start;
    while lines
        .get(start)
        .is_some_and(|line| is_blank(line) || is_quoted(line))
    {
        start += 1;
    }
    let rest = lines.get(start..).unwrap_or_default();
    let leading_quote = lines
        .get(quote_start..start)
        .unwrap_or_default()
        .iter()
        .any(|line| is_quoted(line));
    if leading_quote && has_content(rest) && !rest.iter().any(|line| is_quoted(line)) {
        lines = rest;
    }

    let trimmed = lines.join("\n").trim_matches('\n').to_owned();
    if trimmed.trim().is_empty() {
        text.to_owned()
    } else {
        trimmed
    }
}

/// Elements whose content is not text.
const HIDDEN: [&str; 6] = ["head", "style", "script", "title", "template", "xml"];

/// Elements that start and end a line.
const BLOCKS: [&str; 22] = [
    "p", "div", "tr", "table", "tbody", "thead", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3",
    "h4", "h5", "h6", "section", "article", "header", "footer", "center",
];

/// Builds plain text from HTML: whitespace collapsed, lines started by
/// block elements, quotes (`<blockquote>`) prefixed with `> `.
struct TextWriter {
    out: String,
    quote: usize,
    pre: usize,
    line_start: bool,
    space: bool,
}

impl TextWriter {
    fn text(&mut self, text: &str) {
        for c in text.chars() {
            if self.pre > 0 && c == '\n' {
                self.newline();
            } else if c.is_whitespace() && self.pre == 0 {
                self.space = true;
            } else {
                if self.line_start {
                    for _ in 0..self.quote {
                        self.out.push_str("> ");
                    }
                    self.line_start = false;
                } else if self.space {
                    self.out.push(' ');
                }
                self.space = false;
                self.out.push(c);
            }
        }
    }

    fn newline(&mut self) {
        if self.line_start && self.quote > 0 {
            self.out.push_str(&">".repeat(self.quote));
        }
        self.out.push('\n');
        self.line_start = true;
        self.space = false;
    }

    fn end_line(&mut self) {
        if !self.line_start {
            self.newline();
        }
    }
}

/// The text of an HTML body, for a mail that has no `text/plain` part:
/// `<head>`, `<style>`, `<script>` and comments dropped; `<br>` and block
/// elements make lines, list items start with `- `, a quote
/// (`<blockquote>`, e.g. Gmail's history) becomes `> ` lines, a link keeps
/// its URL when its text does not show it; entities are decoded.
fn html_to_text(html: &str) -> String {
    let mut writer = TextWriter {
        out: String::with_capacity(html.len() / 2),
        quote: 0,
        pre: 0,
        line_start: true,
        space: false,
    };
    let mut hidden: Option<String> = None;
    let mut link: Option<(String, usize)> = None;
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if hidden.is_none() {
                writer.text(&decode_entities(rest));
            }
            break;
        };
        if hidden.is_none() {
            writer.text(&decode_entities(rest.get(..lt).unwrap_or_default()));
        }
        let after = rest.get(lt + 1..).unwrap_or_default();
        if let Some(comment) = after.strip_prefix("!--") {
            rest = comment
                .find("-->")
                .and_then(|end| comment.get(end + 3..))
                .unwrap_or_default();
            continue;
        }
        let is_tag = after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!');
        let Some(gt) = after.find('>').filter(|_| is_tag) else {
            if hidden.is_none() {
                writer.text("<");
            }
            rest = after;
            continue;
        };
        let tag = after.get(..gt).unwrap_or_default();
        rest = after.get(gt + 1..).unwrap_or_default();
        let closing = tag.starts_with('/');
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if let Some(open) = &hidden {
            if closing && *open == name {
                hidden = None;
            }
            continue;
        }
        if !closing && HIDDEN.contains(&name.as_str()) && !tag.ends_with('/') {
            hidden = Some(name);
            continue;
        }
        match (closing, name.as_str()) {
            (_, "br") => writer.newline(),
            (_, "hr") => {
                writer.end_line();
                writer.text("________________________________");
                writer.newline();
            }
            (false, "blockquote") => {
                writer.end_line();
                writer.quote += 1;
            }
            (true, "blockquote") => {
                writer.end_line();
                writer.quote = writer.quote.saturating_sub(1);
            }
            (false, "pre") => {
                writer.end_line();
                writer.pre += 1;
            }
            (true, "pre") => {
                writer.pre = writer.pre.saturating_sub(1);
                writer.end_line();
            }
            (false, "li") => {
                writer.end_line();
                writer.text("- ");
            }
            (true, "li") => writer.end_line(),
            (_, "td" | "th") if closing => writer.text(" "),
            (false, "a") => {
                let href = attribute(tag, "href").unwrap_or_default();
                link = Some((href, writer.out.len()));
            }
            (true, "a") => {
                if let Some((href, from)) = link.take() {
                    let shown = writer.out.get(from..).unwrap_or_default();
                    let web = href.starts_with("http://") || href.starts_with("https://");
                    if web && !shown.contains(href.as_str()) {
                        writer.text(&format!(" ({href})"));
                    }
                }
            }
            (_, block) if BLOCKS.contains(&block) => writer.end_line(),
            _ => {}
        }
    }
    writer.out
}

/// The value of `name="value"` (or `'value'`, or bare) in a tag's text,
/// entities decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut search = 0;
    while let Some(found) = lower.get(search..)?.find(name) {
        let at = search + found;
        search = at + name.len();
        let before_ok = lower
            .get(..at)
            .and_then(|before| before.chars().last())
            .is_some_and(char::is_whitespace);
        let after = tag.get(at + name.len()..)?.trim_start();
        let Some(value) = after.strip_prefix('=').map(str::trim_start) else {
            continue;
        };
        if !before_ok {
            continue;
        }
        let raw = if let Some(quoted) = value.strip_prefix('"') {
            quoted.split('"').next()
        } else if let Some(quoted) = value.strip_prefix('\'') {
            quoted.split('\'').next()
        } else {
            value.split(|c: char| c.is_whitespace()).next()
        }?;
        return Some(decode_entities(raw));
    }
    None
}

/// HTML character references decoded (named ones with `mail-parser`'s
/// table, numeric ones); an unknown one is kept as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp + 1..).unwrap_or_default();
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .unwrap_or(after.len());
        if (1..=32).contains(&end) && after.get(end..).is_some_and(|tail| tail.starts_with(';')) {
            let token = rest.get(amp..amp + end + 2).unwrap_or_default();
            mail_parser::decoders::html::add_html_token(&mut out, token.as_bytes(), false);
            rest = after.get(end + 1..).unwrap_or_default();
        } else {
            out.push('&');
            rest = after;
        }
    }
    out.push_str(rest);
    out.replace('\u{a0}', " ")
}

// ---------------------------------------------------------------------------
// Attachments
// ---------------------------------------------------------------------------

fn attachments(message: &Message<'_>, max_attachment: usize) -> Vec<AttachmentMeta> {
    message
        .attachments()
        .map(|part| {
            let size = part.contents().len();
            let filename = part
                .attachment_name()
                .map(|name| {
                    let name: String = name
                        .chars()
                        .map(|c| if matches!(c, '/' | '\\') { '_' } else { c })
                        .filter(|c| !c.is_control())
                        .collect();
                    truncated(name.trim().to_owned(), 255)
                })
                .filter(|name| !name.is_empty());
            let mime_type = match &part.body {
                PartType::Message(_) => "message/rfc822".to_owned(),
                _ => mime_type(part.content_type())
                    .unwrap_or_else(|| "application/octet-stream".to_owned()),
            };
            AttachmentMeta {
                filename,
                mime_type,
                size,
                too_large: size > max_attachment,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Outbound
// ---------------------------------------------------------------------------

/// The message a reply answers, as the platform recorded it (kept with
/// the message as its `reply_context`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct EmailThread {
    /// Its `Message-ID`, without brackets.
    pub message_id: String,
    /// Its `References`, oldest first, without brackets.
    pub references: Vec<String>,
}

/// A mail's subject as a ticket's: without the `Re:`, `Fwd:`, `RV:`…
/// prefixes replies pile up.
pub fn ticket_subject(subject: &str) -> String {
    let mut rest = one_line(subject, MAX_SUBJECT);
    while let Some((_, after)) = reply_prefix(&rest) {
        if after.len() >= rest.len() {
            break;
        }
        rest = after.trim_start().to_owned();
    }
    rest.trim().to_owned()
}

/// The subject of a reply: `Re: [REF] subject`, whatever `Re:`, `RE:`,
/// `Fwd:`, `RV:`… and `[REF]` tags the subject already carried (no
/// `Re: Re:` stacking).
pub fn reply_subject(subject: &str, reference: &str) -> String {
    let reference = reference.trim();
    let mut rest = one_line(subject, MAX_SUBJECT);
    loop {
        let before = rest.clone();
        if let Some((_, after)) = reply_prefix(&rest) {
            rest = after.to_owned();
        }
        if !reference.is_empty() {
            for tag in [format!("[{reference}]"), format!("[#{reference}]")] {
                while let Some(at) = rest.to_ascii_uppercase().find(&tag.to_ascii_uppercase()) {
                    rest.replace_range(at..at + tag.len(), " ");
                }
            }
            rest = rest.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        if rest == before {
            break;
        }
    }
    match (reference.is_empty(), rest.is_empty()) {
        (true, _) => format!("Re: {rest}").trim_end().to_owned(),
        (false, true) => format!("Re: [{reference}]"),
        (false, false) => format!("Re: [{reference}] {rest}"),
    }
}

/// An agent's reply to a citizen's mail, threaded under it:
/// - `Message-ID: <reply_id@message_id_domain>`: the same reply always gets
///   the same id, so a retry is recognisable and the citizen's answer can be
///   matched back to it;
/// - `In-Reply-To: <parent>` and `References: <parent's references…>
///   <parent>` (at most [`MAX_REFERENCES`], keeping the first — the thread's
///   root — and the latest; ids that are not valid are left out);
/// - `Subject: Re: [REF] subject` ([`reply_subject`]).
///
/// No `Auto-Submitted` header, which RFC 3834 reads as `no`: a person
/// wrote this reply, and marking it automatic would make the citizen's
/// mail program hide or not answer it, and auto-responders are meant to
/// answer people (our parser, not the header, keeps their answers from
/// opening tickets). Never `Precedence: bulk` either (the mailer does not
/// write one).
#[allow(clippy::too_many_arguments)]
pub fn reply_mail(
    from: Address,
    to: Address,
    subject_of_ticket: &str,
    reference: &str,
    text: &str,
    answering: &EmailThread,
    message_id_domain: &str,
    reply_id: Uuid,
) -> OutgoingMail {
    let parent = message_id(&answering.message_id);
    let mut references: Vec<String> = Vec::with_capacity(answering.references.len() + 1);
    for id in answering
        .references
        .iter()
        .filter_map(|id| message_id(id))
        .chain(parent.clone())
    {
        if let Some(known) = references.iter().position(|known| *known == id) {
            references.remove(known);
        }
        references.push(id);
    }
    if references.len() > MAX_REFERENCES {
        let latest = references.split_off(references.len() - (MAX_REFERENCES - 1));
        references.truncate(1);
        references.extend(latest);
    }
    let domain = message_id_domain
        .trim()
        .trim_start_matches('@')
        .to_ascii_lowercase();
    OutgoingMail {
        message_id: format!("{reply_id}@{domain}"),
        from,
        to,
        subject: reply_subject(subject_of_ticket, reference),
        text: text.to_owned(),
        in_reply_to: parent,
        references,
        auto_submitted: false,
        ..OutgoingMail::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const MAX: usize = 1024 * 1024;

    fn own() -> Vec<String> {
        vec!["contacto@lugo.example.org".to_owned()]
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 5, 12, 0, 0).unwrap()
    }

    /// Raw mail from readable text: `\n` becomes CRLF.
    fn raw(text: &str) -> Vec<u8> {
        text.replace('\n', "\r\n").into_bytes()
    }

    fn parsed(mail: &[u8]) -> Parsed {
        parse_with(mail, &own(), MAX, MAX_ATTACHMENT_BYTES, now()).unwrap()
    }

    fn message(
        mail: &[u8],
    ) -> (
        Inbound,
        String,
        Vec<String>,
        Option<String>,
        Vec<AttachmentMeta>,
    ) {
        match parsed(mail) {
            Parsed::Message {
                inbound,
                subject,
                references,
                reference_hint,
                attachments,
                ..
            } => (inbound, subject, references, reference_hint, attachments),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn ignored(mail: &[u8]) -> IgnoreReason {
        match parsed(mail) {
            Parsed::Ignored { reason } => reason,
            other => panic!("expected it ignored, got {other:?}"),
        }
    }

    const THUNDERBIRD_REPLY: &str = "\
Return-Path: <xiana@example.net>
Received: from smtp.example.net (smtp.example.net [192.0.2.10])
\tby mx.lugo.example.org (Postfix) with ESMTPS id 4F1A23B2C1
\tfor <contacto@lugo.example.org>; Tue,  3 Mar 2026 11:42:09 +0100 (CET)
Message-ID: <5b0c7e2a-1111-4c1e-9a3b-2f6d0e8c9a10@example.net>
Date: Tue, 3 Mar 2026 11:42:07 +0100
MIME-Version: 1.0
User-Agent: Mozilla Thunderbird
Subject: Re: [LUGO-2026-000123] Farola fundida en la calle del Castillo
Content-Language: es-ES
To: Concello de Lugo <contacto@lugo.example.org>
References: <c1a2b3@example.net>
 <0b5e6c1a-1f7d-4a43-9d2e-5f0f0c1e2a3b@lugo.example.org>
From: =?UTF-8?Q?Xiana_P=C3=A9rez?= <Xiana@Example.NET>
In-Reply-To: <0b5e6c1a-1f7d-4a43-9d2e-5f0f0c1e2a3b@lugo.example.org>
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 8bit

Buenos días:

Sigue sin funcionar desde el lunes; esta noche la calle estaba a\x20
oscuras otra vez.

Un saludo,
Xiana

El 3/3/26 a las 10:00, Concello de Lugo escribió:
> Hola Xiana:
>
> Hemos avisado al servicio de alumbrado.
>
> El 2/3/26 a las 20:15, Xiana Pérez escribió:
>> La farola del número 12 lleva una semana apagada.
";

    #[test]
    fn a_thunderbird_reply_is_threaded_and_its_history_cut() {
        let (inbound, subject, references, hint, attachments) = message(&raw(THUNDERBIRD_REPLY));
        assert_eq!(inbound.channel, "email");
        assert_eq!(inbound.kind, MessageKind::Direct);
        assert_eq!(
            inbound.platform_id,
            "5b0c7e2a-1111-4c1e-9a3b-2f6d0e8c9a10@example.net"
        );
        assert_eq!(inbound.thread, "c1a2b3@example.net");
        assert_eq!(
            inbound.in_reply_to.as_deref(),
            Some("0b5e6c1a-1f7d-4a43-9d2e-5f0f0c1e2a3b@lugo.example.org")
        );
        assert_eq!(
            references,
            vec![
                "c1a2b3@example.net".to_owned(),
                "0b5e6c1a-1f7d-4a43-9d2e-5f0f0c1e2a3b@lugo.example.org".to_owned()
            ]
        );
        assert_eq!(inbound.author.platform_user_id, "Xiana@example.net");
        assert_eq!(inbound.author.name.as_deref(), Some("Xiana Pérez"));
        assert_eq!(
            inbound.text,
            "Buenos días:\n\nSigue sin funcionar desde el lunes; esta noche la calle estaba a \
             oscuras otra vez.\n\nUn saludo,\nXiana"
        );
        assert_eq!(
            subject,
            "Re: [LUGO-2026-000123] Farola fundida en la calle del Castillo"
        );
        assert_eq!(hint.as_deref(), Some("LUGO-2026-000123"));
        assert_eq!(
            inbound.sent_at,
            Utc.with_ymd_and_hms(2026, 3, 3, 10, 42, 7).unwrap()
        );
        assert!(attachments.is_empty());
    }

    const GMAIL_HTML_ONLY: &str = "\
MIME-Version: 1.0
From: Brais Otero <brais.otero@gmail.com>
Date: Wed, 4 Mar 2026 09:05:31 +0100
Message-ID: <CAKx9pQ2x=Yb7dN_3kq+Q@mail.gmail.com>
Subject: Contenedor roto en la plaza Mayor
To: contacto@lugo.example.org
Content-Type: text/html; charset=\"UTF-8\"
Content-Transfer-Encoding: quoted-printable

<html><head><style>p{margin:0}</style><title>x</title></head><body><div dir=3D=
\"ltr\"><div>Hola,</div><div><br></div><div>El contenedor de vidrio de la plaz=
a Mayor est=C3=A1 roto &amp; hay cristales &lt;en el suelo&gt;.</div><div>Fot=
o: <a href=3D\"https://photos.example/abc\">aqu=C3=AD</a>, y <a href=3D\"https:=
//lugo.example.org\">https://lugo.example.org</a></div><ul><li>uno</li><li>d=
os</li></ul><div><br></div><div>Gracias&nbsp;de antemano</div><script>alert(=
1)</script></div></body></html>
";

    #[test]
    fn a_gmail_html_only_mail_becomes_text() {
        let (inbound, subject, references, hint, _) = message(&raw(GMAIL_HTML_ONLY));
        assert_eq!(
            inbound.text,
            "Hola,\n\nEl contenedor de vidrio de la plaza Mayor está roto & hay cristales \
             <en el suelo>.\nFoto: aquí (https://photos.example/abc), y \
             https://lugo.example.org\n- uno\n- dos\n\nGracias de antemano"
        );
        assert_eq!(inbound.platform_id, "CAKx9pQ2x=Yb7dN_3kq+Q@mail.gmail.com");
        assert_eq!(inbound.thread, inbound.platform_id, "a new conversation");
        assert_eq!(inbound.in_reply_to, None);
        assert!(references.is_empty());
        assert_eq!(subject, "Contenedor roto en la plaza Mayor");
        assert_eq!(hint, None);
    }

    #[test]
    fn the_plain_text_alternative_wins_over_html() {
        let mail = "\
From: Xiana <xiana@example.net>
Subject: Baches
Message-ID: <alt1@example.net>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=\"alt\"

--alt
Content-Type: text/plain; charset=UTF-8

Hay baches en la rúa Nova.
--alt
Content-Type: text/html; charset=UTF-8

<p>Hay <b>baches</b> en la rúa Nova (HTML).</p>
--alt--
";
        let (inbound, .., attachments) = message(&raw(mail));
        assert_eq!(inbound.text, "Hay baches en la rúa Nova.");
        assert!(attachments.is_empty());
    }

    #[test]
    fn a_gmail_html_reply_loses_its_quoted_history() {
        let mail = "\
From: Brais Otero <brais.otero@gmail.com>
Message-ID: <CAKx9pQ3@mail.gmail.com>
In-Reply-To: <7d2c9a4e@lugo.example.org>
References: <CAKx9pQ2x@mail.gmail.com> <7d2c9a4e@lugo.example.org>
Subject: Re: [LUGO-2026-000124] Contenedor roto
Content-Type: text/html; charset=UTF-8

<div dir=\"ltr\">Sigue roto.<div><br></div></div><br><div class=\"gmail_quote\">\
<div dir=\"ltr\" class=\"gmail_attr\">El mar, 3 mar 2026 a las 10:00, Concello de Lugo \
(&lt;<a href=\"mailto:contacto@lugo.example.org\">contacto@lugo.example.org</a>&gt;) \
escribió:<br></div><blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex\">\
<div dir=\"ltr\">Hola Brais,<br>lo revisamos.</div></blockquote></div>
";
        let (inbound, ..) = message(&raw(mail));
        assert_eq!(inbound.text, "Sigue roto.");
        assert_eq!(inbound.thread, "CAKx9pQ2x@mail.gmail.com");
    }

    #[test]
    fn html_becomes_text_with_quotes_marked() {
        assert_eq!(
            html_to_text("<p>Uno</p><p>Dos<br>tres</p><blockquote>cita<br>larga</blockquote>fin"),
            "Uno\nDos\ntres\n> cita\n> larga\nfin"
        );
        assert_eq!(
            html_to_text("<!-- x --><pre>a  b\n c</pre>&#233;&#xE9;&eacute;&bogus; 1 < 2"),
            "a  b\n c\néé&eacute;&bogus; 1 < 2".replace("&eacute;", "é")
        );
        assert_eq!(
            html_to_text("<table><tr><td>a</td><td>b</td></tr></table><style>x</style>"),
            "a b\n"
        );
    }

    #[test]
    fn automatic_mail_is_ignored() {
        let out_of_office = "\
From: Ana Castro <ana.castro@example.org>
To: contacto@lugo.example.org
Subject: Fuera de la oficina: Re: [LUGO-2026-000123] Farola
Auto-Submitted: auto-replied
X-Autoreply: yes
Message-ID: <ooo-20260303@example.org>
Date: Tue, 3 Mar 2026 10:00:03 +0100

Estaré fuera de la oficina hasta el lunes 9 de marzo.
";
        assert_eq!(
            ignored(&raw(out_of_office)),
            IgnoreReason::AutoSubmitted {
                value: "auto-replied".into()
            }
        );
        let header_case = out_of_office.replace(
            "Auto-Submitted: auto-replied",
            "AUTO-SUBMITTED: Auto-Generated; owner-email=\"x@y\"",
        );
        assert!(matches!(
            ignored(&raw(&header_case)),
            IgnoreReason::AutoSubmitted { .. }
        ));
        let only_x = out_of_office.replace("Auto-Submitted: auto-replied\n", "");
        assert_eq!(
            ignored(&raw(&only_x)),
            IgnoreReason::AutoReplyHeader {
                header: "X-Autoreply"
            }
        );
        let bulk = only_x.replace("X-Autoreply: yes", "Precedence: bulk");
        assert_eq!(
            ignored(&raw(&bulk)),
            IgnoreReason::Precedence {
                value: "bulk".into()
            }
        );
        // `Auto-Submitted: no` is a person: a message.
        let person = out_of_office
            .replace("Auto-Submitted: auto-replied", "Auto-Submitted: no")
            .replace("X-Autoreply: yes\n", "");
        assert!(matches!(parsed(&raw(&person)), Parsed::Message { .. }));
    }

    const POSTFIX_DSN: &str = "\
Return-Path: <>
Received: by mx.lugo.example.org (Postfix)
\tid 9C2B23B2C2; Tue,  3 Mar 2026 10:00:05 +0100 (CET)
Date: Tue,  3 Mar 2026 10:00:05 +0100 (CET)
From: MAILER-DAEMON@lugo.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: contacto@lugo.example.org
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary=\"4F1A23B2C1.1772528405/mx.lugo.example.org\"
Content-Transfer-Encoding: 8bit
Message-Id: <20260303090005.9C2B23B2C2@mx.lugo.example.org>

This is a MIME-encapsulated message.

--4F1A23B2C1.1772528405/mx.lugo.example.org
Content-Description: Notification
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host mx.lugo.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<nobody@example.net>: host mx.example.net[192.0.2.25] said: 550 5.1.1
    <nobody@example.net>: Recipient address rejected: User unknown in local
    recipient table (in reply to RCPT TO command)

--4F1A23B2C1.1772528405/mx.lugo.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.lugo.example.org
X-Postfix-Queue-ID: 4F1A23B2C1
X-Postfix-Sender: rfc822; contacto@lugo.example.org
Arrival-Date: Tue,  3 Mar 2026 10:00:04 +0100 (CET)

Final-Recipient: rfc822; nobody@example.net
Original-Recipient: rfc822;nobody@example.net
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.net>: Recipient address
    rejected: User unknown in local recipient table

--4F1A23B2C1.1772528405/mx.lugo.example.org
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: 8bit

Return-Path: <contacto@lugo.example.org>
Received: from ventanilla (localhost [127.0.0.1])
\tby mx.lugo.example.org (Postfix) with ESMTP id 4F1A23B2C1
Message-ID: <7d2c9a4e-5f3b-4b8e-9c1d-0a2b3c4d5e6f@lugo.example.org>
From: Concello de Lugo <contacto@lugo.example.org>
To: nobody@example.net
Subject: Re: [LUGO-2026-000123] Farola

--4F1A23B2C1.1772528405/mx.lugo.example.org--
";

    #[test]
    fn a_postfix_bounce_names_the_failed_reply() {
        assert_eq!(
            parsed(&raw(POSTFIX_DSN)),
            Parsed::Bounce {
                original_message_id: Some(
                    "7d2c9a4e-5f3b-4b8e-9c1d-0a2b3c4d5e6f@lugo.example.org".into()
                ),
                recipient: Some("nobody@example.net".into()),
                permanent: true,
                diagnostic: "550 5.1.1 <nobody@example.net>: Recipient address rejected: \
                             User unknown in local recipient table"
                    .into(),
            }
        );
    }

    #[test]
    fn a_delay_warning_with_the_whole_message_is_not_permanent() {
        let delayed = "\
From: postmaster@relay.example.com
To: contacto@lugo.example.org
Subject: Delivery delayed
Content-Type: multipart/mixed; boundary=\"b1\"

--b1
Content-Type: text/plain

Still trying.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example.com

Final-Recipient: rfc822; <lenta@example.net>
Action: delayed
Status: 4.4.1
Will-Retry-Until: Fri, 6 Mar 2026 10:00:00 +0000

--b1
Content-Type: message/rfc822

Message-ID: <r1@lugo.example.org>
From: contacto@lugo.example.org
To: lenta@example.net
Subject: Re: [LUGO-2026-000200] Baches

Texto de la respuesta.

--b1--
";
        assert_eq!(
            parsed(&raw(delayed)),
            Parsed::Bounce {
                original_message_id: Some("r1@lugo.example.org".into()),
                recipient: Some("lenta@example.net".into()),
                permanent: false,
                diagnostic: "delayed (status 4.4.1)".into(),
            }
        );
        // Without a report, MAILER-DAEMON is still nobody to answer.
        let old_style = "\
From: MAILER-DAEMON@old.example.com
To: contacto@lugo.example.org
Subject: failure notice

Hi. This is the qmail-send program. I'm afraid I wasn't able to deliver
your message.
";
        assert_eq!(ignored(&raw(old_style)), IgnoreReason::MailerDaemon);
        // A read receipt is a report, not a message.
        let receipt = "\
From: Xiana <xiana@example.net>
To: contacto@lugo.example.org
Subject: Leído: Farola
Content-Type: multipart/report; report-type=disposition-notification; boundary=\"r\"

--r
Content-Type: text/plain

Leído.
--r--
";
        assert_eq!(
            ignored(&raw(receipt)),
            IgnoreReason::Report {
                kind: "disposition-notification".into()
            }
        );
    }

    #[test]
    fn mail_from_our_own_address_is_a_loop() {
        let mail = "\
From: Concello de Lugo <Contacto@Lugo.Example.ORG>
To: contacto@lugo.example.org
Subject: Re: [LUGO-2026-000123] Farola
Message-ID: <abc@lugo.example.org>

Texto.
";
        assert_eq!(
            ignored(&raw(mail)),
            IgnoreReason::OwnAddress {
                address: "Contacto@lugo.example.org".into()
            }
        );
        // Our own reply, come back: the same.
        let reply = reply_mail(
            Address::named("Concello de Lugo", "contacto@lugo.example.org"),
            Address::new("xiana@example.net"),
            "Farola",
            "LUGO-2026-000123",
            "Ya está arreglada.",
            &EmailThread {
                message_id: "m1@example.net".into(),
                references: vec![],
            },
            "lugo.example.org",
            Uuid::from_u128(7),
        );
        assert!(matches!(
            parsed(&reply.formatted().unwrap()),
            Parsed::Ignored {
                reason: IgnoreReason::OwnAddress { .. }
            }
        ));
    }

    #[test]
    fn latin1_bodies_and_encoded_subjects_are_decoded() {
        let mut mail = b"From: =?ISO-8859-1?Q?Jos=E9_Fern=E1ndez?= <jose@example.es>\r\n\
To: contacto@lugo.example.org\r\n\
Subject: =?ISO-8859-1?Q?Petici=F3n_de_informaci=F3n?= =?UTF-8?B?OiBjYcOxZXLDrWEgcm90YQ==?=\r\n\
Message-ID: <latin1@example.es>\r\n\
Content-Type: text/plain; charset=ISO-8859-1\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\n"
            .to_vec();
        mail.extend_from_slice(b"Ma\xf1ana se rompi\xf3 la ca\xf1er\xeda.\r\n");
        let (inbound, subject, ..) = message(&mail);
        assert_eq!(subject, "Petición de información: cañería rota");
        assert_eq!(inbound.author.name.as_deref(), Some("José Fernández"));
        assert_eq!(inbound.text, "Mañana se rompió la cañería.");
        let quoted_printable = String::from_utf8_lossy(&mail)
            .replace(
                "Content-Transfer-Encoding: 8bit",
                "Content-Transfer-Encoding: quoted-printable",
            )
            .replace(
                "Ma\u{fffd}ana se rompi\u{fffd} la ca\u{fffd}er\u{fffd}a.",
                "Ma=F1ana=20se rompi=F3 la ca=F1er=EDa.",
            );
        let (inbound, ..) = message(quoted_printable.as_bytes());
        assert_eq!(inbound.text, "Mañana se rompió la cañería.");
        // No Date: now.
        assert_eq!(inbound.sent_at, now());
    }

    #[test]
    fn attachments_are_described_and_large_ones_flagged() {
        let mail = "\
From: Xiana <xiana@example.net>
To: contacto@lugo.example.org
Subject: Foto de la farola
Message-ID: <att1@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"sep\"

--sep
Content-Type: text/plain; charset=UTF-8

Os adjunto la foto y el informe.
--sep
Content-Type: image/jpeg; name=\"farola.jpg\"
Content-Disposition: attachment; filename=\"farola.jpg\"
Content-Transfer-Encoding: base64

/9j/4EpGSUZKRklGSkZJRkpGSUZKRklGSkZJRkpGSUZKRklGSkZJRkpGSUZKRklGSkZJRkpGSUZK
RklGSkZJRkpGSUZKRklGSkZJRkpGSUZKRklGSkZJRkpGSUZKRklGSkZJRkpGSUZKRklGSkZJRkpG
SUZKRklGSkZJRkpGSUZKRklGSkZJRkpGSUZKRklGSkZJRkpGSUY=
--sep
Content-Type: application/pdf
Content-Disposition: attachment; filename*=UTF-8''..%2Finforme_a%C3%B1o.pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--sep--
";
        let parsed = parse_with(&raw(mail), &own(), MAX, 100, now()).unwrap();
        let Parsed::Message {
            inbound,
            attachments,
            ..
        } = parsed
        else {
            panic!("expected a message");
        };
        assert_eq!(inbound.text, "Os adjunto la foto y el informe.");
        assert_eq!(
            attachments,
            vec![
                AttachmentMeta {
                    filename: Some("farola.jpg".into()),
                    mime_type: "image/jpeg".into(),
                    size: 152,
                    too_large: true,
                },
                AttachmentMeta {
                    filename: Some(".._informe_año.pdf".into()),
                    mime_type: "application/pdf".into(),
                    size: 9,
                    too_large: false,
                },
            ]
        );
    }

    #[test]
    fn ticket_references_are_found_in_subjects() {
        for (subject, hint) in [
            ("Re: [LUGO-2026-000123] Farola", Some("LUGO-2026-000123")),
            ("RE: Fwd: farola lugo-2026-000123", Some("LUGO-2026-000123")),
            ("Re: [#AYTO-2025-0001234] x", Some("AYTO-2025-0001234")),
            (
                "AYTO-2026-000001 y [LUGO-2026-000002]",
                Some("LUGO-2026-000002"),
            ),
            ("Farola 2026", None),
            ("[AB-2026-12] corto", None),
            ("", None),
        ] {
            assert_eq!(reference_hint(subject).as_deref(), hint, "{subject}");
        }
    }

    #[test]
    fn a_mail_without_message_id_gets_a_stable_derived_one() {
        let mail = raw("From: a@example.net\nSubject: sin id\n\nHola.\n");
        let (first, ..) = message(&mail);
        let (again, ..) = message(&mail);
        assert_eq!(first.platform_id, again.platform_id);
        assert!(first.platform_id.ends_with("@sha256.invalid"));
        assert_eq!(first.platform_id.len(), 64 + "@sha256.invalid".len());
        assert_eq!(first.thread, first.platform_id);
        assert!(
            message_id(&first.platform_id).is_some(),
            "usable in In-Reply-To"
        );
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let big = vec![b'a'; 2000];
        match parse_with(&big, &own(), 1000, MAX_ATTACHMENT_BYTES, now()) {
            Err(WebhookError::Malformed { network, problem }) => {
                assert_eq!(network, "email");
                assert!(
                    problem.contains("2000 bytes, over the limit of 1000"),
                    "{problem}"
                );
            }
            other => panic!("{other:?}"),
        }
        for bad in [&b""[..], b"  \r\n", b"Subject: no sender\r\n\r\nHola\r\n"] {
            assert!(
                matches!(
                    parse_with(bad, &own(), MAX, MAX_ATTACHMENT_BYTES, now()),
                    Err(WebhookError::Malformed { .. })
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn quoted_history_is_cut_conservatively() {
        let cases = [
            // Top-posting, Gmail's wrapped attribution.
            (
                "Gracias.\n\nEl mar, 3 mar 2026 a las 10:00, Concello de Lugo (<\ncontacto@lugo.example.org>) escribió:\n\n> Hola\n> adiós",
                "Gracias.",
            ),
            // English, Galician.
            (
                "Thanks\n\nOn Tue, 3 Mar 2026, Concello wrote:\n> Hi",
                "Thanks",
            ),
            (
                "Grazas\nO mar., 3 de mar. de 2026, Concello escribiu:\n> Ola",
                "Grazas",
            ),
            // Outlook, without `>`.
            (
                "Recibido.\n\n-----Mensaje original-----\nDe: Concello <c@l.org>\nEnviado el: martes\nPara: Xiana\nAsunto: RE: Farola\n\nTexto citado",
                "Recibido.",
            ),
            (
                "Ok\n________________________________\nFrom: Concello\nSent: Tuesday\nTo: X\nSubject: Farola\n\nquoted",
                "Ok",
            ),
            // Bottom-posting.
            (
                "El 3/3/26, Concello escribió:\n> ¿Sigue apagada?\n\nSí, sigue apagada.",
                "Sí, sigue apagada.",
            ),
            // A trailing quote with no attribution.
            ("Arriba.\n\n> abajo\n> citado", "Arriba."),
            // Interleaved answers keep their quotes.
            (
                "> ¿Qué calle?\nLa del Castillo.\n> ¿Qué número?\nEl 12.",
                "> ¿Qué calle?\nLa del Castillo.\n> ¿Qué número?\nEl 12.",
            ),
            // A sentence that merely mentions writing is kept.
            (
                "El vecino del 3º escribió: que no funciona.\nY sigue así.",
                "El vecino del 3º escribió: que no funciona.\nY sigue así.",
            ),
            // All quote: kept whole rather than lost.
            ("> solo cita", "> solo cita"),
            // A forward is never cut.
            (
                "Mirad esto:\n\n---------- Forwarded message ---------\nDe: Vecina <v@x.org>\nDate: lun\nSubject: Ruido\nTo: yo\n\n> texto",
                "Mirad esto:\n\n---------- Forwarded message ---------\nDe: Vecina <v@x.org>\nDate: lun\nSubject: Ruido\nTo: yo\n\n> texto",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(trim_quoted(text), expected, "{text}");
        }
    }

    #[test]
    fn flowed_text_is_joined() {
        assert_eq!(
            unflow("una línea \nlarga\n-- \nfirma\n> cita \n> sigue", false),
            "una línea larga\n-- \nfirma\n> cita \n> sigue"
        );
        assert_eq!(unflow("pal \nabra\n", true), "palabra\n");
    }

    fn thread() -> EmailThread {
        EmailThread {
            message_id: "<5b0c7e2a@example.net>".into(),
            references: vec!["c1@example.net".into(), "0b5e@lugo.example.org".into()],
        }
    }

    fn reply(subject: &str, answering: &EmailThread) -> OutgoingMail {
        reply_mail(
            Address::named("Concello de Lugo", "contacto@lugo.example.org"),
            Address::named("Xiana Pérez", "xiana@example.net"),
            subject,
            "LUGO-2026-000123",
            "Hola Xiana:\n\nYa está arreglada.\n",
            answering,
            "@Lugo.Example.org",
            Uuid::from_u128(0x0b5e_6c1a),
        )
    }

    #[test]
    fn a_reply_is_threaded_under_the_citizens_mail() {
        let mail = reply("Farola fundida", &thread());
        assert_eq!(
            mail.message_id,
            "00000000-0000-0000-0000-00000b5e6c1a@lugo.example.org"
        );
        assert_eq!(
            mail,
            reply("Farola fundida", &thread()),
            "stable across retries"
        );
        assert_eq!(mail.subject, "Re: [LUGO-2026-000123] Farola fundida");
        assert_eq!(mail.in_reply_to.as_deref(), Some("5b0c7e2a@example.net"));
        assert_eq!(
            mail.references,
            vec![
                "c1@example.net".to_owned(),
                "0b5e@lugo.example.org".to_owned(),
                "5b0c7e2a@example.net".to_owned()
            ]
        );
        assert!(!mail.auto_submitted);
        let wire = String::from_utf8(mail.formatted().unwrap()).unwrap();
        assert!(
            wire.contains("In-Reply-To: <5b0c7e2a@example.net>\r\n"),
            "{wire}"
        );
        let back = MessageParser::default().parse(wire.as_bytes()).unwrap();
        assert_eq!(ids(back.references()), mail.references);
        assert_eq!(
            back.subject(),
            Some("Re: [LUGO-2026-000123] Farola fundida")
        );
        assert!(
            !wire.to_ascii_lowercase().contains("auto-submitted"),
            "{wire}"
        );
        assert!(!wire.to_ascii_lowercase().contains("precedence"), "{wire}");
        assert!(wire.lines().all(|line| line.len() <= 998));
    }

    #[test]
    fn reply_subjects_do_not_stack() {
        for subject in [
            "Farola fundida",
            "Re: Farola fundida",
            "RE: Re: Farola fundida",
            "Re: [LUGO-2026-000123] Farola fundida",
            "Re: Re: [LUGO-2026-000123] Re: Farola fundida",
            "RV: Re[2]: Farola fundida [lugo-2026-000123]",
            "AW : Farola fundida",
        ] {
            assert_eq!(
                reply_subject(subject, "LUGO-2026-000123"),
                "Re: [LUGO-2026-000123] Farola fundida",
                "{subject}"
            );
        }
        assert_eq!(
            reply_subject("", "LUGO-2026-000123"),
            "Re: [LUGO-2026-000123]"
        );
        assert_eq!(reply_subject("Re: Hola", ""), "Re: Hola");
        assert_eq!(
            reply_subject("Recogida de enseres", ""),
            "Re: Recogida de enseres"
        );
    }

    #[test]
    fn long_reference_chains_keep_their_root_and_latest() {
        let long = EmailThread {
            message_id: "parent@example.net".into(),
            references: (0..40)
                .map(|n| format!("m{n}@example.net"))
                .chain(["not an id".to_owned(), "m39@example.net".to_owned()])
                .collect(),
        };
        let mail = reply("x", &long);
        assert_eq!(mail.references.len(), MAX_REFERENCES);
        assert_eq!(mail.references[0], "m0@example.net");
        assert_eq!(mail.references[MAX_REFERENCES - 1], "parent@example.net");
        assert_eq!(mail.references[MAX_REFERENCES - 2], "m39@example.net");
        assert!(mail.formatted().is_ok());
        // A parent without a usable id: no In-Reply-To, still a mail.
        let lost = EmailThread {
            message_id: "sin arroba".into(),
            references: vec![],
        };
        let mail = reply("x", &lost);
        assert_eq!(mail.in_reply_to, None);
        assert!(mail.references.is_empty());
        assert!(mail.formatted().is_ok());
    }
}
