//! The built-in `stream_index` projection: one row per stream with its
//! category, version, event count and last event type. It lists a tenant's
//! aggregates by category, and is the reference projection for rebuilds.

use async_trait::async_trait;
use ventanilla_eventlog::RecordedEvent;

use crate::projection::Projection;
use crate::subscription::{Handler, TenantTx};

/// The `stream_index` projection (table `stream_index`).
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamIndex;

#[async_trait]
impl Handler for StreamIndex {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        let tenant = tx.tenant();
        // One statement for the whole run: the batch's events of this tenant,
        // folded per stream.
        let streams: Vec<&str> = events.iter().map(|e| e.stream.as_str()).collect();
        let categories: Vec<&str> = events.iter().map(|e| e.stream.category()).collect();
        let versions: Vec<i64> = events
            .iter()
            .map(|e| i64::try_from(e.version).unwrap_or(i64::MAX))
            .collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let times: Vec<chrono::DateTime<chrono::Utc>> =
            events.iter().map(|e| e.recorded_at).collect();
        sqlx::query(
            "INSERT INTO stream_index AS s (tenant_id, stream_id, category, version, event_count, last_event_type, updated_at) \
             SELECT DISTINCT ON (u.stream) $1, u.stream, u.category, u.version, \
                    count(*) OVER (PARTITION BY u.stream), u.type, u.at \
               FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[]) \
                    AS u(stream, category, version, type, at) \
              ORDER BY u.stream, u.version DESC \
             ON CONFLICT (tenant_id, stream_id) DO UPDATE \
                SET version = EXCLUDED.version, \
                    event_count = s.event_count + EXCLUDED.event_count, \
                    last_event_type = EXCLUDED.last_event_type, \
                    updated_at = EXCLUDED.updated_at",
        )
        .bind(tenant.into_uuid())
        .bind(&streams)
        .bind(&categories)
        .bind(&versions)
        .bind(&types)
        .bind(&times)
        .execute(tx.conn().await?)
        .await?;
        Ok(())
    }
}

impl Projection for StreamIndex {
    fn name(&self) -> &'static str {
        "stream_index"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["stream_index"]
    }
}
