//! The admin console's pages and their API twins.

use axum::Router;

use crate::state::AppState;

/// The admin routes (pages under `/tasks`, API under `/api/tasks`).
pub fn routes() -> Router<AppState> {
    Router::new()
}
