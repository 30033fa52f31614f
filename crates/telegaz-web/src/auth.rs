//! Who is asking: browser sessions (cookie), API tokens (bearer), the CSRF
//! guard, sign-in and sign-out.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use rand::RngCore;
use secrecy::SecretString;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use telegaz_config::SecureCookies;
use telegaz_domain::{AuditKind, NewAuditEvent, Role, Timestamp, User};
use telegaz_store::NewSession;

use crate::Ctx;
use crate::error::WebError;
use crate::i18n::Lang;
use crate::limit::ClientAddr;

pub(crate) const SESSION_COOKIE: &str = "tg_session";
pub(crate) const PRELOGIN_COOKIE: &str = "tg_prelogin";
pub(crate) const LANG_COOKIE: &str = "tg_lang";
/// Largest form body the CSRF guard reads (profile texts are the biggest forms).
const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;

/// A random secret for a cookie or an API token: 32 bytes, hex.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// How a secret is stored: its SHA-256, hex.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Whether the `Secure` flag goes on cookies for this request.
fn secure(ctx: &Ctx, headers: &HeaderMap) -> bool {
    match ctx.settings.secure_cookies {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => {
            let https = headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"));
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let local = host.starts_with("localhost")
                || host.starts_with("127.0.0.1")
                || host.starts_with("[::1]");
            https || local
        }
    }
}

pub(crate) fn set_cookie(
    ctx: &Ctx,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age_secs: u64,
) -> HeaderValue {
    let secure = if secure(ctx, headers) { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// How the caller proved who they are.
#[derive(Clone)]
pub(crate) enum Via {
    /// A browser session; state changes need this CSRF token.
    Session { csrf: String, token_sha256: String },
    /// An API token: no cookies, so no CSRF.
    Token,
}

/// The signed-in caller, resolved once per request by [`csrf_guard`].
#[derive(Clone)]
pub(crate) struct Identity {
    pub user: User,
    pub via: Via,
}

/// Marks a request to the REST API (its path began with `/api/`).
#[derive(Clone, Copy)]
pub(crate) struct ApiCall;

/// The page language, resolved once per request.
#[derive(Clone, Copy)]
pub(crate) struct PageLang(pub Lang);

async fn identify(
    ctx: &Ctx,
    headers: &HeaderMap,
    client: IpAddr,
) -> Result<Option<Identity>, WebError> {
    let now = Timestamp::now();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        if token.is_empty() {
            return Ok(None);
        }
        // A client that guessed too many tokens is refused before the lookup.
        ctx.limits.check_bearer(client)?;
        let user = ctx.db.user_by_api_token(&token_sha256(token), now).await?;
        if user.is_none() {
            ctx.limits.bad_bearer(client);
        }
        return Ok(user.map(|user| Identity {
            user,
            via: Via::Token,
        }));
    }
    let Some(value) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let hash = token_sha256(&value);
    let session = ctx.db.session(&hash, now).await?;
    Ok(session.map(|s| Identity {
        user: s.user,
        via: Via::Session {
            csrf: s.csrf_token,
            token_sha256: hash,
        },
    }))
}

pub(crate) fn lang_of(request: &Request) -> Lang {
    let from_query = request.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == "lang")
            .and_then(|(_, v)| Lang::parse(v))
    });
    from_query
        .or_else(|| cookie(request.headers(), LANG_COOKIE).and_then(|v| Lang::parse(&v)))
        .unwrap_or_default()
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// Resolve the caller and the language, and refuse any state-changing
/// request made with a session cookie that does not carry the session's CSRF
/// token (form field `csrf` or header `X-CSRF-Token`). The sign-in form is
/// checked against its own pre-session cookie.
pub(crate) async fn csrf_guard(State(ctx): State<Ctx>, request: Request, next: Next) -> Response {
    let lang = lang_of(&request);
    let api = is_api(request.uri().path());
    let client = peer_ip(request.extensions());
    let identity = match identify(&ctx, request.headers(), client).await {
        Ok(i) => i,
        Err(e) => return e.respond(api, lang),
    };
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let mut request = request;
    if unsafe_method {
        let expected = match (&identity, request.uri().path()) {
            // The sign-in form is checked against its own pre-session
            // cookie, whatever session cookie the browser also sends (one
            // planted by someone else must not decide whether it works).
            (_, "/login") => Some(cookie(request.headers(), PRELOGIN_COOKIE).unwrap_or_default()),
            (
                Some(Identity {
                    via: Via::Token, ..
                }),
                _,
            ) => None,
            (
                Some(Identity {
                    via: Via::Session { csrf, .. },
                    ..
                }),
                _,
            ) => Some(csrf.clone()),
            // Not signed in: the handler refuses it (401 or the sign-in page).
            (None, _) => None,
        };
        if let Some(expected) = expected {
            let (parts, body) = request.into_parts();
            let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
                Ok(b) => b,
                Err(_) => {
                    return WebError::BadRequest("the form is too large".into()).respond(api, lang);
                }
            };
            let from_header = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let is_form = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
            let from_form = if is_form {
                serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                    .ok()
                    .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v))
            } else {
                None
            };
            let given = from_header.or(from_form).unwrap_or_default();
            if expected.is_empty() || !constant_time_eq(&given, &expected) {
                tracing::warn!(path = %parts.uri.path(), "request refused: missing or wrong CSRF token");
                metrics::counter!("telegaz_web_csrf_refused_total").increment(1);
                return WebError::Csrf.respond(api, lang);
            }
            request = Request::from_parts(parts, Body::from(bytes));
        }
    }
    request.extensions_mut().insert(PageLang(lang));
    if api {
        request.extensions_mut().insert(ApiCall);
    }
    if let Some(identity) = identity {
        request.extensions_mut().insert(identity);
    }
    next.run(request).await
}

/// A signed-in caller. Pages that need one redirect to the sign-in page;
/// the API answers 401.
pub(crate) struct Auth {
    pub user: User,
    pub via: Via,
    pub lang: Lang,
}

impl Auth {
    /// Refuse unless the caller's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), WebError> {
        if self.user.role >= role {
            Ok(())
        } else {
            Err(WebError::Forbidden)
        }
    }

    pub fn csrf(&self) -> String {
        match &self.via {
            Via::Session { csrf, .. } => csrf.clone(),
            Via::Token => String::new(),
        }
    }
}

pub(crate) struct AuthRejection {
    api: bool,
    target: String,
    lang: Lang,
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        if self.api {
            WebError::Unauthorized.respond(true, self.lang)
        } else {
            let next = urlencode(&self.target);
            Redirect::to(&format!("/login?next={next}")).into_response()
        }
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)])
        .map(|v| v.trim_start_matches("x=").to_owned())
        .unwrap_or_default()
}

impl FromRequestParts<Ctx> for Auth {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _ctx: &Ctx) -> Result<Self, Self::Rejection> {
        let lang = parts
            .extensions
            .get::<PageLang>()
            .map(|l| l.0)
            .unwrap_or_default();
        // Inside the nested `/api/v1` router the URI has lost its prefix;
        // the guard marked the request while it still had it.
        let api = parts.extensions.get::<ApiCall>().is_some() || is_api(parts.uri.path());
        match parts.extensions.get::<Identity>() {
            Some(identity) => Ok(Auth {
                user: identity.user.clone(),
                via: identity.via.clone(),
                lang,
            }),
            None => Err(AuthRejection {
                api,
                target: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "/".into()),
                lang,
            }),
        }
    }
}

/// The language of a page that may be seen signed out.
pub(crate) struct AnyLang(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for AnyLang {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(AnyLang(
            parts
                .extensions
                .get::<PageLang>()
                .map(|l| l.0)
                .unwrap_or_default(),
        ))
    }
}

/// Only same-site paths are followed after sign-in.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".into(),
    }
}

/// The client's address, as the rate-limit guard resolved it (behind a
/// trusted proxy: the address the proxy saw), else the TCP peer.
fn peer_ip(parts: &axum::http::Extensions) -> IpAddr {
    parts
        .get::<ClientAddr>()
        .map(|c| c.0)
        .or_else(|| parts.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

#[derive(Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
    error: Option<String>,
}

pub(crate) async fn login_page(
    State(ctx): State<Ctx>,
    AnyLang(lang): AnyLang,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Result<Response, WebError> {
    let token = generate_token();
    let error = match q.error.as_deref() {
        Some("blocked") => Some("login_blocked"),
        Some(_) => Some("login_failed"),
        None => None,
    };
    let html = crate::pages::render_login(lang, &token, &safe_next(q.next.as_deref()), error)?;
    let mut response = html.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&ctx, &headers, PRELOGIN_COOKIE, &token, 3600),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    user: String,
    password: String,
    next: Option<String>,
}

pub(crate) async fn login_submit(
    State(ctx): State<Ctx>,
    request: Request,
) -> Result<Response, WebError> {
    let ip = peer_ip(request.extensions());
    let headers = request.headers().clone();
    let Form(form) = Form::<LoginForm>::from_request(request, &ctx)
        .await
        .map_err(|e| WebError::BadRequest(e.body_text()))?;
    let next = safe_next(form.next.as_deref());
    let back = |error: &str| {
        Redirect::to(&format!("/login?error={error}&next={}", urlencode(&next))).into_response()
    };
    let mut audit = NewAuditEvent::new(AuditKind::WebLoginFailed, "refused");
    audit.peer = Some(ip.to_string());
    audit.login = Some(form.user.chars().take(64).collect());
    if let Err(blocked) = ctx.throttle.check(ip, &form.user, Instant::now()) {
        audit.outcome = "blocked".into();
        audit.detail = format!(
            "blocked for {} s ({})",
            blocked.remaining.as_secs(),
            blocked.scope.as_str()
        );
        ctx.db.insert_audit(&[audit]).await?;
        return Ok(back("blocked"));
    }
    let user = ctx.db.user_by_name(&form.user).await?;
    let password = SecretString::from(form.password);
    let hash = user
        .as_ref()
        .filter(|u| u.enabled)
        .map(|u| u.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => telegaz_auth::verify_password(&hash, &password).unwrap_or(false),
        None => {
            telegaz_auth::dummy_verify(&password);
            false
        }
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        ctx.throttle.record_failure(ip, &form.user, Instant::now());
        audit.outcome = "bad user name or password".into();
        ctx.db.insert_audit(&[audit]).await?;
        metrics::counter!("telegaz_web_logins_total", "outcome" => "failed").increment(1);
        return Ok(back("failed"));
    };
    ctx.throttle.record_success(ip, &form.user);
    // Never adopt a session id the browser already had (session fixation):
    // the session it names, if any, ends here, and a new id is issued.
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        ctx.db.delete_session(&token_sha256(&old)).await?;
    }
    let token = generate_token();
    let now = Timestamp::now();
    let ttl = ctx.settings.session_ttl;
    let expires = now
        .checked_add(
            jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::from_hours(12)),
        )
        .unwrap_or(now);
    ctx.db
        .create_session(NewSession {
            token_sha256: token_sha256(&token),
            user_id: user.id,
            csrf_token: generate_token(),
            created_at: now,
            expires_at: expires,
        })
        .await?;
    audit.kind = AuditKind::WebLoginSucceeded;
    audit.outcome = "ok".into();
    audit.detail = format!("role {}", user.role);
    ctx.db.insert_audit(&[audit]).await?;
    metrics::counter!("telegaz_web_logins_total", "outcome" => "ok").increment(1);
    tracing::info!(user = %user.name, peer = %ip, "web sign-in");
    let mut response = Redirect::to(&next).into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&ctx, &headers, SESSION_COOKIE, &token, ttl.as_secs()),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&ctx, &headers, PRELOGIN_COOKIE, "", 0),
    );
    Ok(response)
}

pub(crate) async fn logout(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    auth: Auth,
) -> Result<Response, WebError> {
    if let Via::Session { token_sha256, .. } = &auth.via {
        ctx.db.delete_session(token_sha256).await?;
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&ctx, &headers, SESSION_COOKIE, "", 0),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct LangQuery {
    next: Option<String>,
}

/// Switch the language (a cookie) and go back.
pub(crate) async fn switch_lang(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    axum::extract::Path(code): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<LangQuery>,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or_default();
    let mut response = Redirect::to(&safe_next(q.next.as_deref())).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&ctx, &headers, LANG_COOKIE, lang.code(), 365 * 24 * 3600),
    );
    response
}

/// JSON `{"error": ...}` with a status: the API's way of saying no.
pub(crate) fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

use axum::extract::FromRequest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_targets_stay_on_the_site() {
        assert_eq!(safe_next(Some("/devices/a?x=1")), "/devices/a?x=1");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let a = generate_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, generate_token());
        assert_ne!(token_sha256(&a), a);
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tg_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
