//! What goes wrong while answering, and how it is told: an HTML page for
//! people, `{"error": …}` for the API. Internal details go to the log only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use telegaz_store::StoreError;

use crate::i18n::{Lang, lookup};

#[derive(Debug, thiserror::Error)]
pub(crate) enum WebError {
    #[error("sign in, or send an API token (Authorization: Bearer …)")]
    Unauthorized,
    #[error("your role does not allow this")]
    Forbidden,
    #[error(
        "the form is stale or was not sent by this site (CSRF token missing or wrong); reload the page and try again"
    )]
    Csrf,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// Understood, but it cannot be done (e.g. a report of a period without data).
    #[error("{0}")]
    Unprocessable(String),
    #[error(
        "too many requests from your address; wait {retry_after_s} s and try again (web.rate_limit)"
    )]
    TooManyRequests { retry_after_s: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => WebError::NotFound(what),
            StoreError::Conflict(m) => WebError::Conflict(m),
            other => WebError::Internal(other.to_string()),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::Internal(format!("rendering a page: {e}"))
    }
}

impl WebError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            WebError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebError::Forbidden | WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message a caller may see (internal errors are logged, not shown).
    fn public_message(&self) -> String {
        match self {
            WebError::Internal(_) => "internal error; the server log has the details".to_owned(),
            other => other.to_string(),
        }
    }

    pub(crate) fn respond(self, api: bool, lang: Lang) -> Response {
        if let WebError::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let status = self.status();
        let message = self.public_message();
        let retry_after = match &self {
            WebError::TooManyRequests { retry_after_s } => Some(*retry_after_s),
            _ => None,
        };
        let mut response = self.body(api, lang, status, message);
        if let Some(s) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }

    fn body(self, api: bool, lang: Lang, status: StatusCode, message: String) -> Response {
        if api {
            return crate::auth::json_error(status, &message);
        }
        let title = match &self {
            WebError::Forbidden | WebError::Csrf => lookup(lang, "forbidden"),
            WebError::NotFound(_) => lookup(lang, "not_found"),
            WebError::BadRequest(_) | WebError::Conflict(_) | WebError::Unprocessable(_) => {
                lookup(lang, "bad_request")
            }
            _ => lookup(lang, "error"),
        };
        let body = crate::pages::render_error(lang, status.as_u16(), title, &message)
            .unwrap_or_else(|_| message.clone());
        (status, Html(body)).into_response()
    }
}

/// Pages answer in HTML.
impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        self.respond(false, Lang::default())
    }
}
