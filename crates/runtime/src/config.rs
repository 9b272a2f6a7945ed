//! Process settings, loaded in layers: built-in defaults that run on a
//! developer machine, then an optional TOML file, then environment
//! variables named `VENTANILLA__SECTION__KEY` (the plain `DATABASE_URL`
//! is honoured too, below `VENTANILLA__DATABASE__URL`).
//!
//! Every key is declared once, in [`KEYS`], with its default and a one-line
//! description: the same table feeds the defaults, the check for unknown
//! keys and [`env_sample`], so `.env.sample` cannot drift from the code.
//!
//! This module only reads and validates settings; it opens no connection
//! and never logs a value (secrets are [`SecretString`], whose `Debug`
//! prints a placeholder).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ::config::{Config, Environment, File, FileFormat, Map, Source, Value, ValueKind};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Prefix of the environment variables read by [`Settings::load`].
pub const ENV_PREFIX: &str = "VENTANILLA";
/// Separator between the prefix, the section and the key in a variable name.
pub const ENV_SEPARATOR: &str = "__";
/// The conventional variable that also sets `database.url` (the
/// `VENTANILLA__DATABASE__URL` variable wins over it).
pub const DATABASE_URL_VAR: &str = "DATABASE_URL";

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or variable names a key this program does not know, most
    /// likely a typo that would otherwise be silently ignored.
    #[error("unknown configuration key `{key}` in {origin}")]
    UnknownKey {
        /// The dotted key, e.g. `http.bnd`.
        key: String,
        /// Where it came from: the file's path or "the environment".
        origin: String,
    },
    /// The file is missing or malformed, or a value has the wrong type
    /// (the message names the key and where it came from).
    #[error("invalid configuration: {0}")]
    Invalid(#[from] ::config::ConfigError),
    /// A database URL that is not a `postgres://` or `postgresql://` URL.
    #[error("`{key}` must be a postgres:// or postgresql:// URL")]
    NotPostgresUrl {
        /// The offending key.
        key: &'static str,
    },
}

/// One configuration key: its dotted path, its default (none for optional
/// keys) and what it is for.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Dotted path, `section.key`.
    pub path: &'static str,
    /// Built-in default, as it would be written in the environment.
    pub default: Option<&'static str>,
    /// One-line description, rendered into `.env.sample`.
    pub doc: &'static str,
}

impl Key {
    /// The environment variable that sets this key, e.g.
    /// `VENTANILLA__HTTP__BIND`.
    pub fn env_var(&self) -> String {
        let tail = self.path.replace('.', ENV_SEPARATOR).to_uppercase();
        format!("{ENV_PREFIX}{ENV_SEPARATOR}{tail}")
    }
}

const fn key(path: &'static str, default: Option<&'static str>, doc: &'static str) -> Key {
    Key { path, default, doc }
}

/// Every key [`Settings`] understands.
pub const KEYS: &[Key] = &[
    key(
        "database.url",
        Some("postgres://root@127.0.0.1:5432/ventanilla"),
        "owner/admin connection, used for migrations and operator tasks (DATABASE_URL also sets it)",
    ),
    key(
        "database.app_url",
        None,
        "connection of the application; when unset, database.url with the user replaced by app_role",
    ),
    key(
        "database.app_role",
        Some("ventanilla_app"),
        "role the application connects as; it does not own the tables",
    ),
    key(
        "database.app_password",
        None,
        "password of app_role, when it needs one",
    ),
    key(
        "database.max_connections",
        Some("10"),
        "size of each connection pool",
    ),
    key(
        "database.connect_timeout_secs",
        Some("5"),
        "how long to wait for a connection before failing",
    ),
    key(
        "database.statement_timeout_ms",
        Some("30000"),
        "statement_timeout set on every connection",
    ),
    key(
        "database.idle_in_transaction_timeout_ms",
        Some("30000"),
        "idle_in_transaction_session_timeout set on every connection",
    ),
    key(
        "http.bind",
        Some("127.0.0.1:8080"),
        "address the HTTP listener binds (0.0.0.0:8080 to accept outside connections)",
    ),
    key(
        "http.request_timeout_secs",
        Some("30"),
        "requests taking longer are answered 408",
    ),
    key(
        "http.body_limit_bytes",
        Some("1048576"),
        "larger request bodies are refused with 413",
    ),
    key(
        "eventlog.max_event_bytes",
        Some("1048576"),
        "largest serialized event the log accepts",
    ),
    key(
        "eventlog.poll_interval_ms",
        Some("1000"),
        "how often subscriptions poll for new events when not notified",
    ),
    key(
        "eventlog.batch_size",
        Some("500"),
        "events read per batch by subscriptions",
    ),
    key(
        "log.format",
        Some("pretty"),
        "pretty (human-readable lines) or json (one object per line)",
    ),
    key(
        "log.filter",
        Some("info,sqlx=warn"),
        "tracing filter directives; RUST_LOG wins when set",
    ),
    key(
        "social.credentials_key",
        None,
        "32 random bytes, base64: encrypts linked accounts' credentials at rest (AES-256-GCM); unset, no account can be linked",
    ),
    key(
        "social.public_url",
        Some("http://127.0.0.1:8080"),
        "the address the networks reach this platform at; webhook URLs are built on it",
    ),
    key(
        "social.graph_base_url",
        Some("https://graph.facebook.com/v25.0"),
        "Meta's Graph API, version pinned (a local fake in tests and the simulator)",
    ),
    key(
        "social.x_base_url",
        Some("https://api.x.com"),
        "X's API (a local fake in tests and the simulator)",
    ),
    key(
        "social.telegram_base_url",
        Some("https://api.telegram.org"),
        "Telegram's Bot API (a local fake in tests)",
    ),
    key(
        "social.mail_bind",
        None,
        "where the SMTP receiver listens for citizens' mail to linked mailboxes (e.g. 0.0.0.0:25 behind the MX, or 127.0.0.1:2525); unset, no mail is received",
    ),
    key(
        "social.smtp_url",
        Some("smtp://127.0.0.1:25"),
        "the SMTP relay replies to citizens' mail are sent through",
    ),
    key(
        "social.mail_max_bytes",
        Some("26214400"),
        "the largest mail accepted, in bytes (larger is refused with 552)",
    ),
    key(
        "social.poll_interval_secs",
        Some("60"),
        "how often X mentions are polled (accounts without webhook access, and gaps)",
    ),
    key(
        "social.simulator",
        Some("false"),
        "true: serve runs local simulated Facebook and X APIs and sends replies to them (development and demos only)",
    ),
    key(
        "social.delivery_interval_ms",
        Some("500"),
        "how often the delivery worker looks for replies due to be sent",
    ),
    key(
        "notify.key",
        None,
        "32 random bytes, base64: signs the confirmation, unsubscribe and manage links and derives webhook secrets; unset, e-mail and webhook subscriptions are refused",
    ),
    key(
        "notify.public_url",
        Some("http://127.0.0.1:8080"),
        "the address citizens' links (confirm, unsubscribe, manage) point at",
    ),
    key(
        "notify.smtp_url",
        Some("smtp://127.0.0.1:25"),
        "the SMTP relay notifications are sent through: smtp://host:port, smtps://user:pass@host:465, smtp://host:587?tls=required",
    ),
    key(
        "notify.smtp_pool",
        Some("8"),
        "most simultaneous SMTP connections",
    ),
    key(
        "notify.sender_address",
        Some("no-reply@ventanilla.localhost"),
        "the From address of notifications when the tenant has not set its own (the relay must accept it)",
    ),
    key(
        "notify.allow_private_webhooks",
        Some("false"),
        "true: webhook subscriptions may point at loopback and private addresses (development and tests only)",
    ),
    key(
        "notify.interval_ms",
        Some("500"),
        "how often the notification worker looks for notifications due",
    ),
    key(
        "notify.concurrency",
        Some("16"),
        "notifications sent at the same time by one process",
    ),
    key(
        "notify.confirm_hours",
        Some("48"),
        "how long an e-mail subscription waits for its confirmation",
    ),
    key(
        "notify.digest_hour",
        Some("8"),
        "the local hour (0-23, tenant's time zone) daily digests go out",
    ),
    key(
        "notify.mail_sink",
        Some("false"),
        "true: serve runs a local SMTP server that keeps the mail it receives under .local/mail (development and demos only)",
    ),
    key(
        "gateway.operator_token",
        None,
        "the operator's bearer token for the GraphQL API (a long random secret, compared in constant time); unset, nobody has operator access",
    ),
    key(
        "gateway.introspection",
        Some("true"),
        "false: the GraphQL schema cannot be introspected (schema/ventanilla.graphql is the published schema)",
    ),
    key(
        "gateway.max_depth",
        Some("12"),
        "deepest GraphQL query accepted (fields nested)",
    ),
    key(
        "gateway.max_complexity",
        Some("1000"),
        "costliest GraphQL query accepted (each field counts 1, a page's fields count once per item asked)",
    ),
    key(
        "gateway.max_page_size",
        Some("100"),
        "most items one GraphQL page may ask for (`first`)",
    ),
    key(
        "shutdown.grace_secs",
        Some("20"),
        "on SIGTERM, how long to wait for requests and modules to finish",
    ),
];

/// Everything a process reads from its configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// PostgreSQL connections.
    pub database: DatabaseSettings,
    /// The HTTP listener.
    pub http: HttpSettings,
    /// The event log.
    pub eventlog: EventLogSettings,
    /// Logging.
    pub log: LogSettings,
    /// Graceful shutdown.
    pub shutdown: ShutdownSettings,
    /// The social service.
    pub social: SocialSettings,
    /// Notifications ("Avísame cuando…").
    pub notify: NotifySettings,
    /// The GraphQL gateway.
    pub gateway: GatewaySettings,
}

/// The GraphQL gateway: who may act as the operator, and the limits every
/// query is held to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// The operator's bearer token (`None`: no operator access through the
    /// API). Never logged.
    pub operator_token: Option<SecretString>,
    /// Whether the schema may be introspected.
    pub introspection: bool,
    /// Deepest query accepted, in nested fields.
    pub max_depth: usize,
    /// Costliest query accepted.
    pub max_complexity: usize,
    /// Most items one page may ask for.
    pub max_page_size: u32,
}

/// Notifications to subscribers ("Avísame cuando…").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// The key links are signed and webhook secrets derived with (32
    /// bytes, base64). Never logged.
    pub key: Option<SecretString>,
    /// The address citizens' links point at.
    pub public_url: String,
    /// The SMTP relay (may hold credentials: never logged).
    pub smtp_url: SecretString,
    /// Most simultaneous SMTP connections.
    pub smtp_pool: u32,
    /// The default From address.
    pub sender_address: String,
    /// Whether webhooks may point at private addresses.
    pub allow_private_webhooks: bool,
    /// How often the worker looks for due notifications, in ms.
    pub interval_ms: u64,
    /// Notifications sent at the same time by one process.
    pub concurrency: usize,
    /// How long an e-mail subscription waits for its confirmation.
    pub confirm_hours: u32,
    /// The local hour daily digests go out.
    pub digest_hour: u32,
    /// Whether `serve` runs a local SMTP server (development only).
    pub mail_sink: bool,
}

/// The social service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocialSettings {
    /// The key linked accounts' credentials are encrypted with (32 bytes,
    /// base64). Never logged.
    pub credentials_key: Option<SecretString>,
    /// The address the networks reach this platform at.
    pub public_url: String,
    /// Meta's Graph API base URL, version included.
    pub graph_base_url: String,
    /// X's API base URL.
    pub x_base_url: String,
    /// Telegram's Bot API base URL.
    pub telegram_base_url: String,
    /// Where the SMTP receiver listens (unset: no mail received).
    pub mail_bind: Option<SocketAddr>,
    /// The relay replies by e-mail go through (may hold credentials).
    pub smtp_url: SecretString,
    /// The largest mail accepted.
    pub mail_max_bytes: usize,
    /// How often the delivery worker looks for due replies, in ms.
    pub delivery_interval_ms: u64,
    /// How often X mentions are polled, in seconds.
    pub poll_interval_secs: u64,
    /// Whether `serve` runs the simulated networks (development only).
    pub simulator: bool,
}

/// PostgreSQL connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// The owner/admin connection, used for migrations and operator tasks.
    pub url: SecretString,
    /// The application's connection, when it cannot be derived from `url`;
    /// read it through [`DatabaseSettings::app_url`].
    pub app_url: Option<SecretString>,
    /// The role the application connects as. It does not own the tables, so
    /// row-level security applies to it.
    pub app_role: String,
    /// The password of `app_role`, if it needs one.
    pub app_password: Option<SecretString>,
    /// Size of each connection pool.
    pub max_connections: u32,
    /// How long to wait for a connection, in seconds.
    pub connect_timeout_secs: u64,
    /// `statement_timeout` of every connection, in milliseconds.
    pub statement_timeout_ms: u64,
    /// `idle_in_transaction_session_timeout` of every connection, in
    /// milliseconds: a transaction left open by a bug releases its locks.
    pub idle_in_transaction_timeout_ms: u64,
}

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// The address to listen on.
    pub bind: SocketAddr,
    /// Requests taking longer are answered 408, in seconds.
    pub request_timeout_secs: u64,
    /// Larger request bodies are refused with 413.
    pub body_limit_bytes: usize,
}

/// The event log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLogSettings {
    /// Largest serialized event accepted, in bytes.
    pub max_event_bytes: usize,
    /// How often subscriptions poll when not notified, in milliseconds.
    pub poll_interval_ms: u64,
    /// Events read per batch.
    pub batch_size: u32,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Line format.
    pub format: LogFormat,
    /// `tracing` filter directives, used when `RUST_LOG` is not set.
    pub filter: String,
}

/// Graceful shutdown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// How long to wait for requests and modules to finish, in seconds.
    pub grace_secs: u64,
}

impl Settings {
    /// Loads the settings from the defaults, `file` (TOML, if given) and the
    /// process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Settings::load`], with `env` standing for the process
    /// environment (which is not read).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Map<String, String> = env.into_iter().collect();
        let mut builder = Config::builder();
        for key in KEYS {
            if let Some(default) = key.default {
                builder = builder.set_default(key.path, default)?;
            }
        }
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml));
        }
        let database_url = env
            .get(DATABASE_URL_VAR)
            .filter(|url| !url.is_empty())
            .cloned();
        let config = builder
            .add_source(DatabaseUrlVar(database_url))
            .add_source(
                Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator(ENV_SEPARATOR)
                    .separator(ENV_SEPARATOR)
                    .ignore_empty(true)
                    .source(Some(env)),
            )
            .build()?;
        reject_unknown_keys(&config.collect()?, "").map_err(|error| match error {
            // The crate names a file by a path relative to the working
            // directory; the caller's spelling is clearer.
            ConfigError::UnknownKey { key, origin }
                if origin != ENV_ORIGIN && origin != DATABASE_URL_VAR =>
            {
                let origin = file.map_or(origin, |path| path.display().to_string());
                ConfigError::UnknownKey { key, origin }
            }
            other => other,
        })?;
        Ok(config.try_deserialize()?)
    }
}

impl DatabaseSettings {
    /// The application's connection URL: `database.app_url` when set,
    /// otherwise `database.url` with its user (and password) replaced by
    /// `app_role` (and `app_password`, when given).
    pub fn app_url(&self) -> Result<SecretString, ConfigError> {
        if let Some(url) = &self.app_url {
            return Ok(url.clone());
        }
        let admin = self.url.expose_secret();
        let (scheme, rest) = admin
            .split_once("://")
            .filter(|(scheme, _)| {
                scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")
            })
            .ok_or(ConfigError::NotPostgresUrl {
                key: "database.url",
            })?;
        // The user info is whatever precedes the last `@` of the authority,
        // which ends at the first `/`, `?` or `#`.
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let host_and_rest = match rest[..authority_end].rfind('@') {
            Some(at) => &rest[at + 1..],
            None => rest,
        };
        let mut url = format!("{scheme}://{}", percent_encode(&self.app_role));
        if let Some(password) = &self.app_password {
            url.push(':');
            url.push_str(&percent_encode(password.expose_secret()));
        }
        url.push('@');
        url.push_str(host_and_rest);
        Ok(SecretString::from(url))
    }

    /// [`DatabaseSettings::connect_timeout_secs`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
}

impl HttpSettings {
    /// [`HttpSettings::request_timeout_secs`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

impl EventLogSettings {
    /// [`EventLogSettings::poll_interval_ms`] as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

impl ShutdownSettings {
    /// [`ShutdownSettings::grace_secs`] as a duration.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }
}

/// The contents of `.env.sample`: every variable with its default (optional
/// ones commented out) under a one-line comment.
pub fn env_sample() -> String {
    let mut out = String::from(
        "# Ventanilla settings. Each variable overrides the same key of the TOML\n\
         # configuration file, if one is given; unset variables keep the default\n\
         # shown here. DATABASE_URL is also read, below VENTANILLA__DATABASE__URL.\n",
    );
    for key in KEYS {
        out.push_str(&format!("\n# {}\n", key.doc));
        match key.default {
            Some(default) => out.push_str(&format!("{}={default}\n", key.env_var())),
            None => out.push_str(&format!("# {}=\n", key.env_var())),
        }
    }
    out
}

/// How the `config` crate names the environment as the origin of a value.
const ENV_ORIGIN: &str = "the environment";

/// The `DATABASE_URL` variable, as a source that sits between the file and
/// the `VENTANILLA__` variables.
#[derive(Debug, Clone)]
struct DatabaseUrlVar(Option<String>);

impl Source for DatabaseUrlVar {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, ::config::ConfigError> {
        let origin = DATABASE_URL_VAR.to_owned();
        Ok(self
            .0
            .iter()
            .map(|url| {
                let value = Value::new(Some(&origin), ValueKind::String(url.clone()));
                ("database.url".to_owned(), value)
            })
            .collect())
    }
}

/// Fails on the first leaf of `table` whose dotted path is not in [`KEYS`].
fn reject_unknown_keys(table: &Map<String, Value>, prefix: &str) -> Result<(), ConfigError> {
    for (name, value) in table {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match &value.kind {
            ValueKind::Table(inner) => reject_unknown_keys(inner, &path)?,
            _ if KEYS.iter().any(|key| key.path == path) => {}
            _ => {
                return Err(ConfigError::UnknownKey {
                    key: path,
                    origin: value.origin().unwrap_or("the defaults").to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Percent-encodes everything but RFC 3986 unreserved characters, as the
/// user-info part of a URL requires.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A TOML file in the temporary directory, removed on drop.
    struct TomlFile(std::path::PathBuf);

    impl TomlFile {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TomlFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn toml_file(contents: &str) -> TomlFile {
        let path = std::env::temp_dir().join(format!("ventanilla-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, contents).unwrap();
        TomlFile(path)
    }

    fn database(url: &str) -> DatabaseSettings {
        let mut settings = Settings::load_from(None, Vec::new()).unwrap().database;
        settings.url = SecretString::from(url);
        settings
    }

    #[test]
    fn defaults_run_on_this_machine() {
        let s = Settings::load_from(None, Vec::new()).unwrap();
        assert_eq!(
            s.database.url.expose_secret(),
            "postgres://root@127.0.0.1:5432/ventanilla"
        );
        assert_eq!(s.database.app_role, "ventanilla_app");
        assert!(s.database.app_password.is_none());
        assert_eq!(s.database.max_connections, 10);
        assert_eq!(s.database.connect_timeout(), Duration::from_secs(5));
        assert_eq!(s.database.statement_timeout_ms, 30_000);
        assert_eq!(s.database.idle_in_transaction_timeout_ms, 30_000);
        assert_eq!(s.http.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.http.request_timeout(), Duration::from_secs(30));
        assert_eq!(s.http.body_limit_bytes, 1024 * 1024);
        assert_eq!(s.eventlog.max_event_bytes, 1_048_576);
        assert_eq!(s.eventlog.poll_interval(), Duration::from_secs(1));
        assert_eq!(s.eventlog.batch_size, 500);
        assert_eq!(s.log.format, LogFormat::Pretty);
        assert_eq!(s.log.filter, "info,sqlx=warn");
        assert_eq!(s.shutdown.grace(), Duration::from_secs(20));
        assert!(s.gateway.operator_token.is_none());
        assert!(s.gateway.introspection);
        assert_eq!(s.gateway.max_depth, 12);
        assert_eq!(s.gateway.max_complexity, 1000);
        assert_eq!(s.gateway.max_page_size, 100);
    }

    #[test]
    fn environment_beats_file_which_beats_defaults() {
        let file = toml_file(
            "[http]\nbind = \"0.0.0.0:9000\"\nrequest_timeout_secs = 5\n\
             [log]\nformat = \"json\"\n",
        );
        let s = Settings::load_from(
            Some(file.path()),
            env(&[
                ("VENTANILLA__HTTP__BIND", "127.0.0.1:9001"),
                ("VENTANILLA__SHUTDOWN__GRACE_SECS", "3"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.http.bind, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(s.http.request_timeout_secs, 5);
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.shutdown.grace_secs, 3);
        assert_eq!(s.http.body_limit_bytes, 1_048_576);
    }

    #[test]
    fn database_url_variable_sets_the_url_below_the_prefixed_one() {
        let file = toml_file("[database]\nurl = \"postgres://file@db/file\"\n");
        let from_plain = Settings::load_from(
            Some(file.path()),
            env(&[("DATABASE_URL", "postgres://plain@db/plain")]),
        )
        .unwrap();
        assert_eq!(
            from_plain.database.url.expose_secret(),
            "postgres://plain@db/plain"
        );

        let from_prefixed = Settings::load_from(
            Some(file.path()),
            env(&[
                ("DATABASE_URL", "postgres://plain@db/plain"),
                (
                    "VENTANILLA__DATABASE__URL",
                    "postgres://prefixed@db/prefixed",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            from_prefixed.database.url.expose_secret(),
            "postgres://prefixed@db/prefixed"
        );
    }

    #[test]
    fn app_url_replaces_the_user() {
        let db = database("postgres://root@127.0.0.1:5432/ventanilla?sslmode=disable");
        assert_eq!(
            db.app_url().unwrap().expose_secret(),
            "postgres://ventanilla_app@127.0.0.1:5432/ventanilla?sslmode=disable"
        );
    }

    #[test]
    fn app_url_replaces_user_and_password_and_encodes_the_password() {
        let mut db = database("postgresql://admin:s3cret@db.internal/ventanilla");
        db.app_password = Some(SecretString::from("p@ss:w/rd"));
        assert_eq!(
            db.app_url().unwrap().expose_secret(),
            "postgresql://ventanilla_app:p%40ss%3Aw%2Frd@db.internal/ventanilla"
        );
    }

    #[test]
    fn app_url_adds_a_user_when_there_is_none() {
        let db = database("postgres://localhost/ventanilla");
        assert_eq!(
            db.app_url().unwrap().expose_secret(),
            "postgres://ventanilla_app@localhost/ventanilla"
        );
    }

    #[test]
    fn explicit_app_url_wins() {
        let s = Settings::load_from(
            None,
            env(&[("VENTANILLA__DATABASE__APP_URL", "postgres://other@h/d")]),
        )
        .unwrap();
        assert_eq!(
            s.database.app_url().unwrap().expose_secret(),
            "postgres://other@h/d"
        );
    }

    #[test]
    fn app_url_refuses_a_url_that_is_not_postgres() {
        for url in ["mysql://root@localhost/db", "host=localhost user=root"] {
            let err = database(url).app_url().unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::NotPostgresUrl {
                        key: "database.url"
                    }
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_key_in_the_file_is_named() {
        let file = toml_file("[http]\nbnd = \"127.0.0.1:1\"\n");
        let err = Settings::load_from(Some(file.path()), Vec::new()).unwrap_err();
        let message = err.to_string();
        assert_eq!(
            message,
            format!(
                "unknown configuration key `http.bnd` in {}",
                file.path().display()
            )
        );
    }

    #[test]
    fn unknown_section_in_the_environment_is_named() {
        let err = Settings::load_from(None, env(&[("VENTANILLA__HTTPS__BIND", "x")])).unwrap_err();
        assert!(err.to_string().contains("`https.bind`"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let file = toml_file("[http]\nbind = \"nope\"\n");
        let err = Settings::load_from(Some(file.path()), Vec::new()).unwrap_err();
        assert!(err.to_string().contains("http.bind"), "{err}");

        let err = Settings::load_from(
            None,
            env(&[("VENTANILLA__DATABASE__MAX_CONNECTIONS", "many")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("database.max_connections"),
            "{err}"
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let s = Settings::load_from(
            None,
            env(&[
                ("DATABASE_URL", "postgres://u:hunter2@h/d"),
                ("VENTANILLA__DATABASE__APP_PASSWORD", "swordfish"),
                ("VENTANILLA__GATEWAY__OPERATOR_TOKEN", "opensesame"),
            ]),
        )
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("swordfish"), "{debug}");
        assert!(!debug.contains("opensesame"), "{debug}");
    }

    #[test]
    fn env_sample_lists_every_key_and_loads_back() {
        let sample = env_sample();
        for key in KEYS {
            assert!(sample.contains(&key.env_var()), "{}", key.path);
        }
        let vars: Vec<(String, String)> = sample
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            vars.len(),
            KEYS.iter().filter(|k| k.default.is_some()).count()
        );
        Settings::load_from(None, vars).unwrap();
    }
}
