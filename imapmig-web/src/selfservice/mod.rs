//! Employee self-service: invitations (the admin's side) and the page behind a link.

use axum::Router;

use crate::state::AppState;

/// The self-service routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
