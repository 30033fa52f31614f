//! The HTTP side of Telegaz: the web UI (server-rendered, Russian by default),
//! the REST API under `/api/v1`, `/healthz` and Prometheus `/metrics`.
//!
//! Sign-in is by local users (argon2) with roles admin / operator / viewer;
//! browser sessions are cookies whose value is stored only hashed; every
//! state-changing request made with a session cookie must carry the session's
//! CSRF token (checked in one middleware, so no handler can forget it); the
//! REST API also takes bearer tokens.

// The OpenAPI document is one big `json!` literal.
#![recursion_limit = "512"]

mod api;
mod auth;
mod bans;
mod chart;
mod devices;
mod error;
mod i18n;
mod limit;
mod pages;
mod security;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use telegaz_auth::{LoginThrottle, ThrottlePolicy};
use telegaz_config::{Config, SecureCookies, WebRateLimitConfig};
use telegaz_ingest::SharedProfiles;
use telegaz_spool::Spool;
use telegaz_store::Database;
use tokio::net::TcpListener;

pub use auth::{generate_token, token_sha256};
pub use i18n::Lang;

/// What the configuration sheet prints about how to reach the server.
#[derive(Debug, Clone, Default)]
pub struct SheetInfo {
    pub server: Option<String>,
    pub port: u16,
    pub second_server: Option<String>,
    pub apn_note: String,
    pub schedule: String,
    pub passive_ports: String,
}

/// Settings of the web side, taken from the configuration.
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub session_ttl: Duration,
    pub secure_cookies: SecureCookies,
    pub late_after: Duration,
    pub silent_after: Duration,
    pub sheet: SheetInfo,
    /// Where operators' text profiles live.
    pub profiles_dir: PathBuf,
    /// The configured alert notifiers: (name, type), shown on the alerts page.
    pub notifiers: Vec<(String, String)>,
    /// Request rate limits per client (`[web.rate_limit]`;
    /// `WebRateLimitConfig::off()` for none).
    pub rate_limit: WebRateLimitConfig,
}

impl WebSettings {
    pub fn from_config(config: &Config) -> WebSettings {
        let ftp_port = config.ftp_listen().map(|a| a.port()).unwrap_or(21);
        let sheet = &config.web.sheet;
        WebSettings {
            session_ttl: config.web.session_ttl,
            secure_cookies: config.web.secure_cookies,
            late_after: config.web.late_after,
            silent_after: config.web.silent_after,
            sheet: SheetInfo {
                server: sheet
                    .server
                    .clone()
                    .or_else(|| config.ftp.passive_host.clone()),
                port: sheet.port.unwrap_or(ftp_port),
                second_server: sheet.second_server.clone(),
                apn_note: sheet.apn_note.clone(),
                schedule: sheet.schedule.clone(),
                passive_ports: format!(
                    "{}-{}",
                    config.ftp.passive_ports.first(),
                    config.ftp.passive_ports.last()
                ),
            },
            profiles_dir: config.data_dir.join("profiles"),
            notifiers: config
                .notifier
                .iter()
                .map(|n| {
                    let field = |k: &str| {
                        n.0.get(k)
                            .and_then(|v| v.as_str())
                            .unwrap_or("?")
                            .to_owned()
                    };
                    (field("name"), field("type"))
                })
                .collect(),
            rate_limit: config.web.rate_limit.clone(),
        }
    }
}

/// Everything a request handler can reach.
pub struct WebContext {
    pub db: Arc<dyn Database>,
    pub spool: Spool,
    pub settings: WebSettings,
    pub metrics: Option<PrometheusHandle>,
    /// The text profiles in force; the ingest worker shares them, so a
    /// profile saved in the UI applies from the next file on.
    pub profiles: SharedProfiles,
    /// Whether the database answers, as the receiver sees it (`/healthz`).
    pub db_health: telegaz_store::DbHealth,
    pub(crate) throttle: LoginThrottle,
    pub(crate) limits: limit::RateLimits,
}

impl WebContext {
    pub fn new(
        db: Arc<dyn Database>,
        spool: Spool,
        settings: WebSettings,
        metrics: Option<PrometheusHandle>,
    ) -> Arc<WebContext> {
        Self::with_health(db, spool, settings, metrics, telegaz_store::DbHealth::new())
    }

    /// The same, showing the receiver's view of the database in `/healthz`.
    pub fn with_health(
        db: Arc<dyn Database>,
        spool: Spool,
        settings: WebSettings,
        metrics: Option<PrometheusHandle>,
        db_health: telegaz_store::DbHealth,
    ) -> Arc<WebContext> {
        let profiles = SharedProfiles::new(load_profiles(&settings.profiles_dir));
        let limits = limit::RateLimits::new(&settings.rate_limit);
        Arc::new(WebContext {
            limits,
            db,
            spool,
            settings,
            metrics,
            profiles,
            db_health,
            throttle: LoginThrottle::new(ThrottlePolicy {
                max_failures_per_login_and_address: 5,
                max_failures_per_address: 20,
                window: Duration::from_secs(15 * 60),
                block_for: Duration::from_secs(15 * 60),
                ..ThrottlePolicy::default()
            }),
        })
    }
}

impl WebContext {
    /// Load the profiles from disk again and put them in force.
    pub fn reload_profiles(&self) {
        self.profiles
            .replace(load_profiles(&self.settings.profiles_dir));
    }
}

fn load_profiles(dir: &std::path::Path) -> telegaz_ingest::Profiles {
    let (profiles, errors) = telegaz_ingest::load_profile_dir(dir);
    for e in errors {
        tracing::error!(profile = %e.path.display(), error = %e.error, "profile skipped: fix it (the web UI shows it under Profiles)");
    }
    profiles
}

pub(crate) type Ctx = Arc<WebContext>;

/// Install the process-wide Prometheus recorder. Call once, before anything counts.
pub fn install_metrics() -> Result<PrometheusHandle, String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))
}

/// The whole HTTP application.
pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .merge(pages::routes())
        .nest("/api/v1", api::routes())
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            auth::csrf_guard,
        ))
        // Before anything reads the database: refuse clients over a limit.
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            limit::guard,
        ))
        .layer(axum::middleware::from_fn(security::headers))
        .with_state(ctx)
}

/// `ok`, or `degraded: …` while the database is away (still `200`: the
/// receiver keeps accepting uploads, so a load balancer keeps sending them).
async fn healthz(State(ctx): State<Ctx>) -> impl IntoResponse {
    let mut line = ctx.db_health.summary();
    line.push('\n');
    line
}

async fn render_metrics(State(ctx): State<Ctx>) -> impl IntoResponse {
    let text = ctx.metrics.as_ref().map(|m| m.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// Bind the web listener (so that start-up fails early on a taken port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    ctx: Ctx,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(ctx).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
