//! The REST API under `/api/v1`.
//!
//! Every route is declared once, in [`endpoints`]: its method, path, the
//! access it needs and its OpenAPI description. The router and the OpenAPI
//! document (`GET /api/v1/openapi.json`) are both made from that table, so
//! they cannot drift apart; the access check is a layer added from the same
//! entry, so no handler can forget it.
//!
//! Errors are `{"error": "…"}` with the fitting status. Decimal quantities
//! are JSON numbers; local (device) times are `YYYY-MM-DDTHH:MM:SS` without
//! an offset; instants are RFC 3339 in UTC.

pub(crate) mod alerts;
mod audit;
mod bans;
mod data;
mod devices;
mod fleet;
pub(crate) mod openapi;
pub(crate) mod reports;
pub(crate) mod uploads;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use serde::de::DeserializeOwned;
use telegaz_domain::{Decimal, Device, Role};
use telegaz_store::StoreError;

use crate::Ctx;
use crate::auth::Identity;
use crate::error::WebError;
use crate::i18n::Lang;

/// An API failure: answered as `{"error": "…"}`.
#[derive(Debug)]
pub(crate) struct ApiError(pub WebError);

impl From<WebError> for ApiError {
    fn from(e: WebError) -> Self {
        ApiError(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.respond(true, Lang::default())
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(WebError::BadRequest(message.into()))
}

/// A JSON request body; a malformed one is answered in JSON (400, or 422
/// when it is JSON of the wrong shape, 415 without a JSON content type).
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => {
                let message = rejection.body_text();
                Err(match rejection {
                    JsonRejection::JsonDataError(_) => {
                        ApiError(WebError::Unprocessable(message)).into_response()
                    }
                    JsonRejection::MissingJsonContentType(_) => crate::auth::json_error(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "send the body as JSON (Content-Type: application/json)",
                    ),
                    _ => bad_request(message).into_response(),
                })
            }
        }
    }
}

/// Query parameters; bad ones are answered 400 in JSON.
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| bad_request(e.body_text()))
    }
}

/// Path parameters; bad ones are answered 400 in JSON.
pub(crate) struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| bad_request(e.body_text()))
    }
}

/// The repeated `key=value` pairs of a query string, in order.
pub(crate) fn query_pairs(query: Option<&str>) -> ApiResult<Vec<(String, String)>> {
    serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| bad_request(format!("bad query string: {e}")))
}

/// A decimal as a JSON number (`null` when absent).
pub(crate) fn num(d: Option<Decimal>) -> serde_json::Value {
    // Through the shortest decimal text of the nearest double: the digits
    // stay exactly those of the stored value (meter values have far fewer
    // than 15 significant digits).
    d.and_then(|d| d.normalize().to_string().parse::<f64>().ok())
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// A local (device) time as the CLI prints it.
pub(crate) fn local(dt: jiff::civil::DateTime) -> String {
    dt.strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

/// The device with this name, or 404.
pub(crate) async fn find_device(ctx: &Ctx, name: &str) -> ApiResult<Device> {
    ctx.db
        .device_by_name(name)
        .await?
        .ok_or_else(|| ApiError(WebError::NotFound(format!("device {name:?}"))))
}

/// The most rows one page of a list returns, and the default.
pub(crate) const MAX_LIMIT: u32 = 1000;
pub(crate) const DEFAULT_LIMIT: u32 = 100;

pub(crate) fn limit(asked: Option<u32>) -> ApiResult<u32> {
    match asked {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(bad_request(format!(
            "limit {n} is out of range (1..={MAX_LIMIT})"
        ))),
    }
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in user (viewer and up).
    Read,
    /// Operators and administrators.
    Change,
    /// Administrators only.
    Admin,
}

impl Access {
    pub(crate) fn role(self) -> Option<Role> {
        match self {
            Access::Public => None,
            Access::Read => Some(Role::Viewer),
            Access::Change => Some(Role::Operator),
            Access::Admin => Some(Role::Admin),
        }
    }
}

/// Refuse a caller who may not use the endpoint: 401 when nobody is signed
/// in, 403 when the role is too low.
async fn require(State(access): State<Access>, request: Request, next: Next) -> Response {
    if let Some(role) = access.role() {
        let Some(identity) = request.extensions().get::<Identity>() else {
            return ApiError(WebError::Unauthorized).into_response();
        };
        if identity.user.role < role {
            tracing::info!(
                user = %identity.user.name,
                role = %identity.user.role,
                path = %request.uri().path(),
                "API request refused: role too low"
            );
            return ApiError(WebError::Forbidden).into_response();
        }
    }
    next.run(request).await
}

/// One route of the API.
pub(crate) struct Endpoint {
    pub method: Method,
    /// Path below `/api/v1`, with `{param}` placeholders (as in OpenAPI).
    pub path: &'static str,
    pub access: Access,
    /// The OpenAPI operation object (without the parts made from `access`
    /// and the path, which the document adds).
    pub doc: fn() -> serde_json::Value,
    route: MethodRouter<Ctx>,
}

fn ep(
    method: Method,
    path: &'static str,
    access: Access,
    route: MethodRouter<Ctx>,
    doc: fn() -> serde_json::Value,
) -> Endpoint {
    Endpoint {
        method,
        path,
        access,
        doc,
        route,
    }
}

/// Every route of the API: the one table the router and the OpenAPI
/// document are made from.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    use Access::{Admin, Change, Public, Read};
    use openapi::ops;
    vec![
        ep(
            Method::GET,
            "/openapi.json",
            Public,
            get(openapi::serve),
            ops::openapi,
        ),
        ep(
            Method::GET,
            "/devices",
            Read,
            get(devices::list),
            ops::list_devices,
        ),
        ep(
            Method::POST,
            "/devices",
            Change,
            post(devices::create),
            ops::create_device,
        ),
        ep(
            Method::GET,
            "/devices/{name}",
            Read,
            get(devices::one),
            ops::get_device,
        ),
        ep(
            Method::PATCH,
            "/devices/{name}",
            Change,
            patch(devices::update),
            ops::update_device,
        ),
        ep(
            Method::POST,
            "/devices/{name}/password",
            Change,
            post(devices::rotate_password),
            ops::rotate_password,
        ),
        ep(
            Method::GET,
            "/devices/{name}/readings",
            Read,
            get(data::readings),
            ops::readings,
        ),
        ep(
            Method::GET,
            "/devices/{name}/daily",
            Read,
            get(data::daily),
            ops::daily,
        ),
        ep(
            Method::GET,
            "/devices/{name}/events",
            Read,
            get(data::events),
            ops::events,
        ),
        ep(
            Method::GET,
            "/uploads",
            Read,
            get(uploads::list),
            ops::list_uploads,
        ),
        ep(
            Method::GET,
            "/uploads/{id}",
            Read,
            get(uploads::one),
            ops::get_upload,
        ),
        ep(
            Method::GET,
            "/uploads/{id}/raw",
            Read,
            get(uploads::raw),
            ops::raw_upload,
        ),
        ep(
            Method::POST,
            "/uploads/{id}/reparse",
            Change,
            post(uploads::reparse),
            ops::reparse_upload,
        ),
        ep(
            Method::GET,
            "/reports",
            Read,
            get(reports::report),
            ops::report,
        ),
        ep(
            Method::GET,
            "/completeness",
            Read,
            get(reports::completeness),
            ops::completeness,
        ),
        ep(Method::GET, "/audit", Read, get(audit::list), ops::audit),
        ep(Method::GET, "/fleet", Read, get(fleet::fleet), ops::fleet),
        ep(
            Method::GET,
            "/alerts",
            Read,
            get(alerts::list),
            ops::list_alerts,
        ),
        ep(
            Method::POST,
            "/alerts/{alert}/ack",
            Change,
            post(alerts::acknowledge),
            ops::ack_alert,
        ),
        // --- bans (abuse resistance) ---
        ep(Method::GET, "/bans", Admin, get(bans::list), ops::list_bans),
        ep(
            Method::POST,
            "/bans",
            Admin,
            post(bans::add),
            ops::create_ban,
        ),
        ep(
            Method::DELETE,
            "/bans/{ban}",
            Admin,
            delete(bans::remove),
            ops::lift_ban,
        ),
        // --- end bans ---
    ]
}

pub(crate) fn routes() -> Router<Ctx> {
    let mut router = Router::new();
    for e in endpoints() {
        let guarded = e
            .route
            .layer(axum::middleware::from_fn_with_state(e.access, require));
        router = router.route(e.path, guarded);
    }
    router.fallback(|| async {
        ApiError(WebError::NotFound(
            "this API path (see /api/v1/openapi.json)".into(),
        ))
    })
}
