//! One outgoing message ([`OutgoingMail`]) and how it becomes RFC 5322 bytes:
//! every field is checked (addresses, message ids, header names and values)
//! before lettre's builder writes the headers, encodes UTF-8 subjects and
//! names (RFC 2047) and picks the body encodings.

use lettre::{
    address::Envelope,
    message::{
        Mailbox, MultiPart, SinglePart,
        header::{HeaderName, HeaderValue},
    },
};

use crate::MailError;

/// A mailbox: an e-mail address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    /// Display name (`Concello de Lugo`); any Unicode, no line breaks.
    pub name: Option<String>,
    /// The address itself (`avisos@lugo.example.org`).
    pub email: String,
}

impl Address {
    /// An address without display name.
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            name: None,
            email: email.into(),
        }
    }

    /// An address with a display name.
    pub fn named(name: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            email: email.into(),
        }
    }

    fn email_address(&self, role: &str) -> Result<lettre::Address, MailError> {
        self.email.parse().map_err(|err| {
            MailError::Invalid(format!(
                "the {role} address {:?} is not a valid e-mail address ({err})",
                self.email
            ))
        })
    }

    fn mailbox(&self, role: &str) -> Result<Mailbox, MailError> {
        let email = self.email_address(role)?;
        let name = match self.name.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => {
                check_one_line(&format!("the {role} display name"), name)?;
                Some(name.to_owned())
            }
        };
        Ok(Mailbox::new(name, email))
    }
}

/// One message to one recipient.
///
/// Callers render their own wording: this type carries finished text, never
/// templates. Build one with [`OutgoingMail::new`] and set the optional
/// fields, or write the struct out in full.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutgoingMail {
    /// The `Message-ID` without angle brackets (`<uuid>@notify.example.org`
    /// minus the brackets); the mailer adds them. Keep it to thread replies.
    pub message_id: String,
    /// The author (`From`): display name and address.
    pub from: Address,
    /// Where replies go (`Reply-To`), if not to `from`.
    pub reply_to: Option<Address>,
    /// The single recipient (`To` and the SMTP envelope).
    pub to: Address,
    /// The subject, any Unicode, one line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// An HTML alternative; when present the message is
    /// `multipart/alternative` with the text first.
    pub html: Option<String>,
    /// An `https` URL that unsubscribes the recipient with one POST: adds
    /// `List-Unsubscribe: <url>` and `List-Unsubscribe-Post:
    /// List-Unsubscribe=One-Click` (RFC 8058). Receivers honour it only when
    /// the message is DKIM-signed over these headers (the relay's job).
    pub list_unsubscribe: Option<String>,
    /// The list identifier (`List-Id: <id>`, RFC 2919), without brackets,
    /// e.g. `avisos.lugo.ventanilla.example`.
    pub list_id: Option<String>,
    /// The message id this one answers (`In-Reply-To`), without brackets.
    pub in_reply_to: Option<String>,
    /// The thread's message ids, oldest first (`References`), without
    /// brackets.
    pub references: Vec<String>,
    /// Adds `Auto-Submitted: auto-generated` (RFC 3834) so auto-responders
    /// stay quiet; notifications set it, personal replies do not.
    pub auto_submitted: bool,
    /// The language of the text (`Content-Language`, e.g. `gl` or `es-ES`).
    pub language: Option<String>,
    /// The SMTP envelope sender (`MAIL FROM`, where bounces go); `None` uses
    /// `from.email`.
    pub envelope_from: Option<String>,
    /// Extra headers, e.g. `X-Ventanilla-Notification`. Names must be valid
    /// header names and not one of the headers the mailer writes itself;
    /// values must be one line.
    pub headers: Vec<(String, String)>,
}

/// Headers the mailer writes itself (or that only servers write): refused as
/// extra headers so they cannot be doubled or overridden.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-language",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "auto-submitted",
    "return-path",
    "received",
];

/// Longest header line we write without folding: a URL or id this long
/// would push the line past RFC 5322's 998-character limit.
const MAX_HEADER_TOKEN: usize = 900;

impl OutgoingMail {
    /// A message with the required fields; everything optional is empty or
    /// off.
    pub fn new(
        message_id: impl Into<String>,
        from: Address,
        to: Address,
        subject: impl Into<String>,
        text: impl Into<String>,
    ) -> Self {
        Self {
            message_id: message_id.into(),
            from,
            to,
            subject: subject.into(),
            text: text.into(),
            ..Self::default()
        }
    }

    /// The message exactly as it goes over SMTP (RFC 5322 bytes, CRLF line
    /// endings, before dot-stuffing). Fails with [`MailError::Invalid`] when
    /// a field is not acceptable.
    pub fn formatted(&self) -> Result<Vec<u8>, MailError> {
        Ok(self.build()?.formatted())
    }

    /// Checks every field and builds lettre's message, envelope included.
    pub(crate) fn build(&self) -> Result<lettre::Message, MailError> {
        let from = self.from.mailbox("sender (from)")?;
        let to = self.to.mailbox("recipient (to)")?;
        let envelope_from = match &self.envelope_from {
            None => from.email.clone(),
            Some(email) => Address::new(email.clone()).email_address("envelope sender")?,
        };
        let envelope = Envelope::new(Some(envelope_from), vec![to.email.clone()])
            .map_err(|err| MailError::Invalid(format!("the SMTP envelope is wrong: {err}")))?;

        check_one_line("the subject", &self.subject)?;
        let mut builder = lettre::Message::builder()
            .envelope(envelope)
            .message_id(Some(message_id("message_id", &self.message_id)?))
            .from(from)
            .to(to)
            .subject(self.subject.clone());
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.mailbox("reply-to")?);
        }
        if let Some(id) = &self.in_reply_to {
            builder = builder.in_reply_to(message_id("in_reply_to", id)?);
        }
        if !self.references.is_empty() {
            let ids = self
                .references
                .iter()
                .map(|id| message_id("references", id))
                .collect::<Result<Vec<_>, _>>()?;
            builder = builder.references(ids.join(" "));
        }
        if let Some(url) = &self.list_unsubscribe {
            let url = unsubscribe_url(url)?;
            builder = builder
                .raw_header(raw("List-Unsubscribe", format!("<{url}>")))
                .raw_header(raw(
                    "List-Unsubscribe-Post",
                    "List-Unsubscribe=One-Click".to_owned(),
                ));
        }
        if let Some(id) = &self.list_id {
            builder = builder.raw_header(raw("List-Id", format!("<{}>", list_id(id)?)));
        }
        if self.auto_submitted {
            builder = builder.raw_header(raw("Auto-Submitted", "auto-generated".to_owned()));
        }
        if let Some(language) = &self.language {
            builder = builder.raw_header(raw("Content-Language", content_language(language)?));
        }
        let mut seen: Vec<String> = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let header = extra_header(name, value)?;
            let lower = name.to_ascii_lowercase();
            if seen.contains(&lower) {
                return Err(MailError::Invalid(format!(
                    "the extra header {name:?} is given twice; give it once"
                )));
            }
            seen.push(lower);
            builder = builder.raw_header(header);
        }

        let built = match &self.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                self.text.clone(),
                html.clone(),
            )),
            None => builder.singlepart(SinglePart::plain(self.text.clone())),
        };
        built.map_err(|err| MailError::Invalid(format!("lettre refused the message: {err}")))
    }
}

/// A header lettre encodes itself (RFC 2047 for non-ASCII, folding).
fn raw(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// Refuses line breaks (header injection) and other control characters
/// except tab.
fn check_one_line(what: &str, value: &str) -> Result<(), MailError> {
    if value.contains(['\r', '\n']) {
        return Err(MailError::Invalid(format!(
            "{what} contains a line break (CR or LF), which could inject headers; \
             it must be a single line: {value:?}"
        )));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(MailError::Invalid(format!(
            "{what} contains a control character; remove it: {value:?}"
        )));
    }
    Ok(())
}

/// Printable ASCII except space (33..=126).
fn is_token_char(c: char) -> bool {
    c.is_ascii_graphic()
}

/// Strips one optional pair of angle brackets and checks the result looks
/// like `left@right` in printable ASCII; returns it *with* brackets.
fn message_id(field: &str, id: &str) -> Result<String, MailError> {
    let bare = id
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
        .unwrap_or(id);
    let valid = bare.len() <= MAX_HEADER_TOKEN
        && bare
            .chars()
            .all(|c| is_token_char(c) && c != '<' && c != '>')
        && bare
            .split_once('@')
            .is_some_and(|(left, right)| !left.is_empty() && !right.is_empty());
    if valid {
        Ok(format!("<{bare}>"))
    } else {
        Err(MailError::Invalid(format!(
            "{field} {id:?} is not a valid message id: it must look like \
             `unique-part@domain`, printable ASCII without spaces or angle brackets"
        )))
    }
}

fn unsubscribe_url(value: &str) -> Result<&str, MailError> {
    let refuse = |why: &str| {
        MailError::Invalid(format!(
            "list_unsubscribe {value:?} is not usable: {why} \
             (one-click unsubscribe needs an https URL, RFC 8058)"
        ))
    };
    if value.len() > MAX_HEADER_TOKEN {
        return Err(refuse("it is too long"));
    }
    if !value
        .chars()
        .all(|c| is_token_char(c) && c != '<' && c != '>')
    {
        return Err(refuse(
            "it contains spaces, angle brackets, line breaks or non-ASCII characters \
             (percent-encode them)",
        ));
    }
    let url = url::Url::parse(value).map_err(|err| refuse(&err.to_string()))?;
    if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) {
        return Err(refuse("it is not an https URL with a host"));
    }
    Ok(value)
}

fn list_id(id: &str) -> Result<&str, MailError> {
    let bare = id
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
        .unwrap_or(id);
    let valid = !bare.is_empty()
        && bare.len() <= 255
        && bare.contains('.')
        && !bare.starts_with('.')
        && !bare.ends_with('.')
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    if valid {
        Ok(bare)
    } else {
        Err(MailError::Invalid(format!(
            "list_id {id:?} is not a valid list identifier: it must look like \
             `list-label.example.org` (ASCII letters, digits, dots and hyphens; RFC 2919)"
        )))
    }
}

fn content_language(value: &str) -> Result<String, MailError> {
    let tags: Vec<&str> = value.split(',').map(str::trim).collect();
    let valid = tags.iter().all(|tag| {
        !tag.is_empty()
            && tag.len() <= 35
            && tag.split('-').all(|part| {
                !part.is_empty()
                    && part.len() <= 8
                    && part.chars().all(|c| c.is_ascii_alphanumeric())
            })
    });
    if valid {
        Ok(tags.join(", "))
    } else {
        Err(MailError::Invalid(format!(
            "language {value:?} is not a language tag like `gl`, `es` or `es-ES` \
             (several may be separated by commas)"
        )))
    }
}

fn extra_header(name: &str, value: &str) -> Result<HeaderValue, MailError> {
    let valid_name =
        !name.is_empty() && name.len() <= 76 && name.chars().all(|c| is_token_char(c) && c != ':');
    if !valid_name {
        return Err(MailError::Invalid(format!(
            "the extra header name {name:?} is not a valid header name: it must be 1 to 76 \
             printable ASCII characters without spaces or colons"
        )));
    }
    if RESERVED_HEADERS
        .iter()
        .any(|reserved| name.eq_ignore_ascii_case(reserved))
    {
        return Err(MailError::Invalid(format!(
            "the header {name:?} cannot be set as an extra header: the mailer writes it \
             itself (use the matching field of OutgoingMail)"
        )));
    }
    check_one_line(&format!("the value of the extra header {name:?}"), value)?;
    let header_name = HeaderName::new_from_ascii(name.to_owned()).map_err(|err| {
        MailError::Invalid(format!("the extra header name {name:?} is refused: {err}"))
    })?;
    Ok(HeaderValue::new(header_name, value.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn sample() -> OutgoingMail {
        OutgoingMail::new(
            "0b5e6c1a-1f7d-4a43-9d2e-5f0f0c1e2a3b@notify.example.org",
            Address::named("Concello de Lugo", "avisos@lugo.example.org"),
            Address::named("Xiana Pérez", "xiana@example.net"),
            "Inscripción abierta: campamentos de verano",
            "Ola!\nXa podes inscribirte.\n",
        )
    }

    fn text(mail: &OutgoingMail) -> String {
        String::from_utf8(mail.formatted().unwrap()).unwrap()
    }

    fn invalid(mail: &OutgoingMail) -> String {
        match mail.formatted() {
            Err(MailError::Invalid(message)) => message,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn headers_are_written_and_encoded() {
        let mut mail = sample();
        mail.list_unsubscribe = Some("https://lugo.example.org/baixa?t=abc".into());
        mail.list_id = Some("avisos.lugo.ventanilla.example".into());
        mail.in_reply_to = Some("<a1@example.net>".into());
        mail.references = vec!["a0@example.net".into(), "a1@example.net".into()];
        mail.auto_submitted = true;
        mail.language = Some("gl".into());
        mail.headers = vec![("X-Ventanilla-Notification".into(), "campamentos".into())];
        let out = text(&mail);
        let head = out.split("\r\n\r\n").next().unwrap();
        assert!(head.is_ascii(), "headers must be ASCII: {head}");
        assert!(
            head.contains(
                "Message-ID: <0b5e6c1a-1f7d-4a43-9d2e-5f0f0c1e2a3b@notify.example.org>\r\n"
            )
        );
        assert!(head.contains("From: \"Concello de Lugo\" <avisos@lugo.example.org>\r\n"));
        assert!(head.contains("Subject: =?utf-8?"), "{head}");
        assert!(head.contains("List-Unsubscribe: <https://lugo.example.org/baixa?t=abc>\r\n"));
        assert!(head.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
        assert!(head.contains("List-Id: <avisos.lugo.ventanilla.example>\r\n"));
        assert!(head.contains("In-Reply-To: <a1@example.net>\r\n"));
        assert!(head.contains("References: <a0@example.net> <a1@example.net>\r\n"));
        assert!(head.contains("Auto-Submitted: auto-generated\r\n"));
        assert!(head.contains("Content-Language: gl\r\n"));
        assert!(head.contains("X-Ventanilla-Notification: campamentos\r\n"));
        assert!(head.contains("Date: "));
        assert!(!head.contains("\r\nReply-To:"), "{head}");
    }

    #[test]
    fn envelope_follows_from_or_envelope_from() {
        let mut mail = sample();
        let built = mail.build().unwrap();
        assert_eq!(
            built.envelope().from().unwrap().to_string(),
            "avisos@lugo.example.org"
        );
        assert_eq!(built.envelope().to().len(), 1);
        mail.envelope_from = Some("bounces+123@lugo.example.org".into());
        let built = mail.build().unwrap();
        assert_eq!(
            built.envelope().from().unwrap().to_string(),
            "bounces+123@lugo.example.org"
        );
    }

    #[test]
    fn text_only_is_single_part_with_html_it_is_alternative() {
        let mut mail = sample();
        assert!(text(&mail).contains("Content-Type: text/plain; charset=utf-8"));
        mail.html = Some("<p>Ola!</p>".into());
        assert!(text(&mail).contains("Content-Type: multipart/alternative"));
    }

    #[test]
    fn optional_headers_are_absent_by_default() {
        let out = text(&sample());
        for name in [
            "List-Unsubscribe",
            "List-Id",
            "Auto-Submitted",
            "In-Reply-To",
            "References",
            "Content-Language",
        ] {
            assert!(!out.contains(name), "{name} should be absent");
        }
    }

    #[test]
    fn injection_is_refused() {
        let mut mail = sample();
        mail.headers = vec![("X-Test".into(), "ok\r\nBcc: victim@example.com".into())];
        assert!(invalid(&mail).contains("line break"));

        let mut mail = sample();
        mail.subject = "Hola\nBcc: x@example.com".into();
        assert!(invalid(&mail).contains("subject"));

        let mut mail = sample();
        mail.from.name = Some("Lugo\r\nBcc: x@example.com".into());
        assert!(invalid(&mail).contains("display name"));
    }

    #[test]
    fn bad_header_names_are_refused() {
        for name in [
            "",
            "X Bad",
            "X:Bad",
            "X-Ñ",
            "Bcc",
            "subject",
            "LIST-UNSUBSCRIBE",
        ] {
            let mut mail = sample();
            mail.headers = vec![(name.into(), "v".into())];
            invalid(&mail);
        }
        let mut mail = sample();
        mail.headers = vec![("X-A".into(), "1".into()), ("x-a".into(), "2".into())];
        assert!(invalid(&mail).contains("twice"));
    }

    #[test]
    fn bad_fields_are_refused() {
        let mut mail = sample();
        mail.to.email = "not an address".into();
        assert!(invalid(&mail).contains("recipient"));

        let mut mail = sample();
        mail.message_id = "no-at-sign".into();
        assert!(invalid(&mail).contains("message_id"));

        let mut mail = sample();
        mail.references = vec!["ok@x".into(), "bad id@x".into()];
        assert!(invalid(&mail).contains("references"));

        for url in [
            "http://lugo.example.org/baixa",
            "mailto:baixa@lugo.example.org",
            "https://lugo.example.org/a b",
            "https://lugo.example.org/>",
            "not a url",
        ] {
            let mut mail = sample();
            mail.list_unsubscribe = Some(url.into());
            assert!(invalid(&mail).contains("list_unsubscribe"), "{url}");
        }

        let mut mail = sample();
        mail.list_id = Some("no dots".into());
        assert!(invalid(&mail).contains("list_id"));

        let mut mail = sample();
        mail.language = Some("gl\r\nX: y".into());
        assert!(invalid(&mail).contains("language"));
    }

    #[test]
    fn brackets_are_optional_on_ids() {
        let mut mail = sample();
        mail.message_id = "<m@x.org>".into();
        mail.in_reply_to = Some("p@x.org".into());
        let out = text(&mail);
        assert!(out.contains("Message-ID: <m@x.org>\r\n"));
        assert!(out.contains("In-Reply-To: <p@x.org>\r\n"));
    }
}
