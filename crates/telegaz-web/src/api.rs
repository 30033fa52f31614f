//! The REST API under `/api/v1`.

use axum::Router;

use crate::Ctx;

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
}
