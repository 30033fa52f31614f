//! Server-rendered pages. Each module owns its routes, templates and phrases.

pub(crate) mod alerts;
pub(crate) mod audit;
pub(crate) mod bans;
pub(crate) mod device;
pub(crate) mod fleet;
pub(crate) mod profiles;
pub(crate) mod registry;
pub(crate) mod reports;
pub(crate) mod uploads;
pub(crate) mod users;

use askama::Template;
use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use telegaz_domain::{Role, User};

use crate::Ctx;
use crate::auth::Auth;
use crate::error::WebError;
use crate::i18n::{Lang, lookup};

/// Every page module's phrase table (key, Russian, English); the language
/// lookup searches them all after the common table.
pub(crate) const MODULE_PHRASES: &[&[(&str, &str, &str)]] = &[
    uploads::PHRASES,
    registry::PHRASES,
    audit::PHRASES,
    users::PHRASES,
    reports::PHRASES,
    profiles::PHRASES,
    device::PHRASES,
    alerts::PHRASES,
    bans::PHRASES,
];

/// What every page's frame needs.
pub(crate) struct Common {
    pub lang: Lang,
    pub user: Option<User>,
    pub csrf: String,
    /// This page's path and query, for the language switch to come back to.
    pub here: String,
}

impl Common {
    pub fn new(auth: &Auth, here: &str) -> Common {
        Common {
            lang: auth.lang,
            user: Some(auth.user.clone()),
            csrf: auth.csrf(),
            here: here.to_owned(),
        }
    }

    pub fn anonymous(lang: Lang) -> Common {
        Common {
            lang,
            user: None,
            csrf: String::new(),
            here: "/".into(),
        }
    }

    /// A phrase in the page's language.
    pub fn t(&self, key: &str) -> &'static str {
        lookup(self.lang, key)
    }

    // For the templates of the pages that change things (none yet).
    pub fn can_change(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.role.can_change())
    }

    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.role == Role::Admin)
    }

    pub fn user_name(&self) -> String {
        self.user
            .as_ref()
            .map(|u| u.name.to_string())
            .unwrap_or_default()
    }

    pub fn role_name(&self) -> &'static str {
        self.user.as_ref().map(|u| u.role.as_str()).unwrap_or("")
    }

    pub fn lang_code(&self) -> &'static str {
        self.lang.code()
    }

    /// The language-switch link back to this page.
    pub fn lang_link(&self) -> String {
        format!(
            "/lang/{}?next={}",
            self.lang.other().code(),
            crate::auth::urlencode(&self.here)
        )
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    c: Common,
    token: &'a str,
    next: &'a str,
    error: Option<&'static str>,
}

pub(crate) fn render_login(
    lang: Lang,
    token: &str,
    next: &str,
    error: Option<&'static str>,
) -> Result<Html<String>, WebError> {
    let page = LoginPage {
        c: Common::anonymous(lang),
        token,
        next,
        error,
    };
    Ok(Html(page.render()?))
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    c: Common,
    code: u16,
    title: &'a str,
    message: &'a str,
}

pub(crate) fn render_error(
    lang: Lang,
    code: u16,
    title: &str,
    message: &str,
) -> Result<String, askama::Error> {
    ErrorPage {
        c: Common::anonymous(lang),
        code,
        title,
        message,
    }
    .render()
}

/// Render a template into an HTML response.
pub(crate) fn html<T: Template>(page: &T) -> Result<axum::response::Response, WebError> {
    Ok(Html(page.render()?).into_response())
}

const CSS: &str = include_str!("../../static/app.css");
const JS: &str = include_str!("../../static/app.js");

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route(
            "/login",
            get(crate::auth::login_page).post(crate::auth::login_submit),
        )
        .route("/logout", post(crate::auth::logout))
        .route("/lang/{code}", get(crate::auth::switch_lang))
        .route(
            "/static/app.css",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                        (header::CACHE_CONTROL, "max-age=3600"),
                    ],
                    CSS,
                )
            }),
        )
        .route(
            "/static/app.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "max-age=3600"),
                    ],
                    JS,
                )
            }),
        )
        .merge(fleet::routes())
        .merge(uploads::routes())
        .merge(registry::routes())
        .merge(audit::routes())
        .merge(users::routes())
        .merge(reports::routes())
        .merge(profiles::routes())
        .merge(device::routes())
        .merge(alerts::routes())
        .merge(bans::routes())
}
