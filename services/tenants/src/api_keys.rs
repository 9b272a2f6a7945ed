//! (being written)

use std::sync::Arc;

use ventanilla_postgres::projection::Projection;

/// The read models of this part of the service.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    Vec::new()
}
