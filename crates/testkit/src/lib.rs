//! Test kit: a fresh, migrated PostgreSQL database for every test, on the
//! real server — never a mock of it.
//!
//! The first test of a run creates a template database with every migration
//! applied (named after a hash of the migrations, so a changed migration makes
//! a new template), and each test clones it with `CREATE DATABASE … TEMPLATE`,
//! which takes milliseconds. The database is dropped when the [`TestDb`] is
//! dropped; `make test` also sweeps leftovers of crashed runs.
//!
//! The server comes from `VENTANILLA_TEST_DATABASE_URL` (an owner or
//! superuser URL; default `postgres://root@127.0.0.1:5432/postgres`). Set
//! `TEST_LOG=1` to see the platform's logs in a test.

#![allow(clippy::expect_used)]

pub mod isolation;

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, PgPool};
use ventanilla_postgres::{MIGRATOR, PoolSettings, db};

/// Prefix of every database the kit creates.
pub const TEST_DB_PREFIX: &str = "vt_test_";

/// The server tests run against (an owner/superuser URL).
pub fn server_url() -> String {
    std::env::var("VENTANILLA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".to_owned())
}

/// Installs a test log subscriber when `TEST_LOG` is set.
pub fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info,sqlx=warn".into()),
            )
            .with_test_writer()
            .try_init();
    }
}

/// A fresh database, migrated, with an owner pool and an application-role
/// pool. Dropped (with `DROP DATABASE … WITH (FORCE)`) when this value is.
pub struct TestDb {
    name: String,
    server: PgConnectOptions,
    /// Connection URL as the owner (superuser): migrations, DDL, raw checks.
    pub admin_url: String,
    /// Connection URL as `ventanilla_app`, the role the platform runs as.
    pub app_url: String,
    /// Pool as the owner.
    pub admin: PgPool,
    /// Pool as `ventanilla_app` (row-level security applies).
    pub app: PgPool,
}

fn template_name() -> String {
    // FNV-1a over every migration's version and checksum.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for m in MIGRATOR.iter() {
        for b in m.version.to_be_bytes().iter().chain(m.checksum.iter()) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("vt_template_{h:016x}")
}

fn url_for(server: &PgConnectOptions, user: &str, database: &str) -> String {
    format!(
        "postgres://{user}@{}:{}/{database}",
        server.get_host(),
        server.get_port()
    )
}

async fn ensure_template(server: &PgConnectOptions) -> anyhow::Result<String> {
    let name = template_name();
    let mut conn = server.connect().await?;
    // One creator at a time, across test processes.
    sqlx::query("SELECT pg_advisory_lock(7201)")
        .execute(&mut conn)
        .await?;
    let result = async {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)",
        )
        .bind(&name)
        .fetch_one(&mut conn)
        .await?;
        if !exists {
            sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
                .execute(&mut conn)
                .await?;
            sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await?;
            let mut tpl = PgConnection::connect_with(&server.clone().database(&name)).await?;
            MIGRATOR.run(&mut tpl).await?;
            tpl.close().await?;
            sqlx::query(AssertSqlSafe(format!(
                "ALTER DATABASE {name} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
            )))
            .execute(&mut conn)
            .await?;
        }
        anyhow::Ok(())
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(7201)")
        .execute(&mut conn)
        .await?;
    result?;
    Ok(name)
}

impl TestDb {
    /// Creates a fresh migrated database.
    pub async fn new() -> Self {
        init_logging();
        Self::try_new()
            .await
            .expect("cannot create a test database: is PostgreSQL running? (make test starts it)")
    }

    async fn try_new() -> anyhow::Result<Self> {
        let server = PgConnectOptions::from_str(&server_url())?;
        let template = ensure_template(&server).await?;
        let name = format!("{TEST_DB_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let mut conn = server.connect().await?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {template}"
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        let admin_url = url_for(&server, server.get_username(), &name);
        let app_url = url_for(&server, "ventanilla_app", &name);
        let settings = PoolSettings {
            max_connections: 20,
            ..PoolSettings::default()
        };
        let admin = db::connect(&admin_url, &settings).await?;
        let app = db::connect(&app_url, &settings).await?;
        Ok(Self {
            name,
            server,
            admin_url,
            app_url,
            admin,
            app,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop from a thread of its own: Drop cannot await, and the test's
        // runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = server.connect().await {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}
