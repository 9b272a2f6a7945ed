//! Connections, the database's creation and migration, and tenant-scoped
//! transactions.
//!
//! Two kinds of connection exist. The *owner* (admin) connection runs
//! migrations and operator tasks. The *application* connection logs in as
//! `ventanilla_app`, which owns no table, so row-level security applies to it;
//! every query on tenant data runs in a transaction that first sets
//! `app.tenant_id` with `set_config(…, true)` (local to the transaction, so a
//! pooled connection carries no tenant into its next use).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Postgres, Transaction};
use ventanilla_kernel::TenantId;

use crate::MIGRATOR;

/// A database problem, said in one line a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL does not parse.
    #[error(
        "the database URL is not valid ({reason}); expected postgres://user[:password]@host[:port]/database"
    )]
    BadUrl {
        /// Why.
        reason: String,
    },
    /// The server refused or could not be reached.
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect {
        /// `user@host:port/database`, never the password.
        target: String,
        /// The driver's reason.
        reason: String,
    },
    /// Migrating failed.
    #[error("migrating the database failed: {0}")]
    Migrate(String),
    /// Any other query failed.
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

/// Pool sizing and server-side time-outs.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// The most connections the pool opens.
    pub max_connections: u32,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// `statement_timeout` on every connection.
    pub statement_timeout: Duration,
    /// `idle_in_transaction_session_timeout` on every connection: one
    /// forgotten open transaction would otherwise hold every subscription
    /// back (see `docs/eventlog.md`, gap safety).
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            idle_in_transaction_timeout: Duration::from_secs(30),
        }
    }
}

fn options(url: &str) -> Result<PgConnectOptions, DbError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(DbError::BadUrl {
            reason: "it does not start with postgres:// or postgresql://".into(),
        });
    }
    PgConnectOptions::from_str(url).map_err(|e| DbError::BadUrl {
        reason: first_line(&e.to_string()),
    })
}

fn target(o: &PgConnectOptions) -> String {
    format!(
        "{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or("(default)")
    )
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

/// Opens a pool to `url` with the given settings. Fails with one readable
/// line when the URL is malformed or the server cannot be reached.
pub async fn connect(url: &str, settings: &PoolSettings) -> Result<PgPool, DbError> {
    let opts = options(url)?
        .options([
            (
                "statement_timeout",
                settings.statement_timeout.as_millis().to_string(),
            ),
            (
                "idle_in_transaction_session_timeout",
                settings.idle_in_transaction_timeout.as_millis().to_string(),
            ),
        ])
        .application_name("ventanilla")
        .log_statements(tracing::log::LevelFilter::Trace);
    let target = target(&opts);
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.connect_timeout)
        .connect_with(opts)
        .await
        .map_err(|e| DbError::Connect {
            target,
            reason: first_line(&e.to_string()),
        })
}

/// Creates the database named in `admin_url` if it does not exist, by
/// connecting to the server's `postgres` database with the same credentials.
pub async fn ensure_database(admin_url: &str) -> Result<bool, DbError> {
    let opts = options(admin_url)?;
    let Some(name) = opts.get_database().map(str::to_owned) else {
        return Err(DbError::BadUrl {
            reason: "it names no database".into(),
        });
    };
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(DbError::BadUrl {
            reason: format!("database name {name:?} may only hold letters, digits, '_' and '-'"),
        });
    }
    let maintenance = opts.clone().database("postgres");
    let target = target(&opts);
    let mut conn = maintenance.connect().await.map_err(|e| DbError::Connect {
        target,
        reason: first_line(&e.to_string()),
    })?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if exists {
        return Ok(false);
    }
    // The name was checked above to hold no quote.
    let create = format!("CREATE DATABASE \"{name}\"");
    match sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&mut conn)
        .await
    {
        Ok(_) => Ok(true),
        // Someone else created it meanwhile.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Applies the pending migrations (as the owner).
pub async fn migrate(admin: &PgPool) -> Result<(), DbError> {
    MIGRATOR
        .run(admin)
        .await
        .map_err(|e| DbError::Migrate(first_line(&e.to_string())))
}

/// Begins a transaction that sees and writes only `tenant`'s rows.
pub async fn begin_for_tenant(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    set_tenant(&mut tx, tenant).await?;
    Ok(tx)
}

/// Scopes the rest of the current transaction to `tenant`.
pub async fn set_tenant(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// The two pools a process uses.
#[derive(Debug, Clone)]
pub struct Database {
    /// The application role's pool: everything at run time.
    pub app: PgPool,
}

impl Database {
    /// Creates the database if needed, migrates it as the owner, then opens
    /// the application pool. What `serve` and `migrate` do at start-up.
    pub async fn prepare(
        admin_url: &str,
        app_url: &str,
        settings: &PoolSettings,
    ) -> Result<Self, DbError> {
        ensure_database(admin_url).await?;
        let admin = connect(
            admin_url,
            &PoolSettings {
                max_connections: 2,
                ..settings.clone()
            },
        )
        .await?;
        migrate(&admin).await?;
        admin.close().await;
        let app = connect(app_url, settings).await?;
        Ok(Self { app })
    }
}
