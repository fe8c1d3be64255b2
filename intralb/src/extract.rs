//! axum extractors for [`Db<T>`] and [`WorkerId`] (feature `axum`).

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::db::{Db, Rejection};
use crate::drain::Drain;
use crate::worker_id::WorkerId;

impl<S, T> FromRequestParts<S> for Db<T>
where
    S: Send + Sync,
    T: Send + 'static,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Db::from_extensions(&parts.extensions)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WorkerId {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<WorkerId>()
            .copied()
            .ok_or(Rejection::not_balanced())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Drain {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Drain::from_extensions(&parts.extensions)
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "cannot give the handler what it asked for");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n").into_response()
    }
}
