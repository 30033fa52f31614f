//! Users (administrators only) and one's own account: password and API tokens.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use telegaz_domain::{ApiToken, AuditKind, NewAuditEvent, Role, User, UserId, UserName};
use telegaz_store::{NewUser, UserUpdate};

use super::{Common, html};
use crate::Ctx;
use crate::auth::{Auth, generate_token, token_sha256};
use crate::devices::hash;
use crate::error::WebError;

pub(crate) const PHRASES: &[(&str, &str, &str)] = &[
    ("users_title", "Пользователи", "Users"),
    ("add_user", "Добавить пользователя", "Add a user"),
    ("role_admin", "администратор", "administrator"),
    ("role_operator", "оператор", "operator"),
    ("role_viewer", "наблюдатель", "viewer"),
    ("reset_password", "Новый пароль", "New password"),
    (
        "new_password_once",
        "Новый пароль (показан один раз)",
        "New password (shown once)",
    ),
    ("account_title", "Учётная запись", "Account"),
    ("change_password", "Сменить пароль", "Change password"),
    ("current_password", "Текущий пароль", "Current password"),
    (
        "new_password",
        "Новый пароль (не короче 12 символов)",
        "New password (at least 12 characters)",
    ),
    (
        "password_changed",
        "Пароль изменён. Войдите снова.",
        "Password changed. Sign in again.",
    ),
    ("api_tokens", "Токены REST API", "REST API tokens"),
    ("token_label", "Назначение", "Purpose"),
    ("create_token", "Создать токен", "Create a token"),
    (
        "token_once",
        "Токен показан один раз; передавайте его в заголовке Authorization: Bearer …",
        "The token is shown once; send it as Authorization: Bearer …",
    ),
    ("revoke", "Отозвать", "Revoke"),
    ("last_used", "Последнее использование", "Last used"),
];

async fn audit(ctx: &Ctx, by: &Auth, who: &User, detail: String) -> Result<(), WebError> {
    let mut e = NewAuditEvent::new(AuditKind::UserChanged, "ok");
    e.login = Some(who.name.to_string());
    e.detail = format!("web, by {}: {detail}", by.user.name);
    ctx.db.insert_audit(&[e]).await?;
    Ok(())
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    c: Common,
    users: Vec<User>,
    created: Option<(String, String)>,
}

async fn list(
    State(ctx): State<Ctx>,
    auth: Auth,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    auth.require(Role::Admin)?;
    html(&UsersPage {
        c: Common::new(&auth, &uri.to_string()),
        users: ctx.db.list_users().await?,
        created: None,
    })
}

#[derive(Deserialize)]
pub(crate) struct AddForm {
    name: String,
    role: String,
}

async fn add(
    State(ctx): State<Ctx>,
    auth: Auth,
    Form(form): Form<AddForm>,
) -> Result<Response, WebError> {
    auth.require(Role::Admin)?;
    let name = UserName::parse(form.name.trim()).map_err(WebError::BadRequest)?;
    let role = form.role.parse::<Role>().map_err(WebError::BadRequest)?;
    let password = telegaz_auth::generate_password();
    let user = ctx
        .db
        .create_user(NewUser {
            name,
            password_hash: hash(&password).await?,
            role,
        })
        .await?;
    audit(&ctx, &auth, &user, format!("user added with role {role}")).await?;
    html(&UsersPage {
        c: Common::new(&auth, "/users"),
        users: ctx.db.list_users().await?,
        created: Some((user.name.to_string(), password.expose_secret().to_owned())),
    })
}

#[derive(Deserialize)]
pub(crate) struct ChangeForm {
    action: String,
    #[serde(default)]
    role: String,
}

async fn change(
    State(ctx): State<Ctx>,
    auth: Auth,
    Path(id): Path<i64>,
    Form(form): Form<ChangeForm>,
) -> Result<Response, WebError> {
    auth.require(Role::Admin)?;
    let user = ctx
        .db
        .user_by_id(UserId(id))
        .await?
        .ok_or_else(|| WebError::NotFound(format!("user #{id}")))?;
    if user.id == auth.user.id && form.action != "password" {
        return Err(WebError::BadRequest(
            "you cannot change your own role or disable yourself; ask another administrator".into(),
        ));
    }
    let mut new_password = None;
    let update = match form.action.as_str() {
        "role" => UserUpdate {
            role: Some(form.role.parse::<Role>().map_err(WebError::BadRequest)?),
            ..UserUpdate::default()
        },
        "disable" => UserUpdate {
            enabled: Some(false),
            ..UserUpdate::default()
        },
        "enable" => UserUpdate {
            enabled: Some(true),
            ..UserUpdate::default()
        },
        "password" => {
            let pw = telegaz_auth::generate_password();
            let h = hash(&pw).await?;
            new_password = Some(pw);
            UserUpdate {
                password_hash: Some(h),
                ..UserUpdate::default()
            }
        }
        other => return Err(WebError::BadRequest(format!("unknown action {other:?}"))),
    };
    let after = ctx.db.update_user(user.id, update).await?;
    audit(&ctx, &auth, &after, form.action.clone()).await?;
    match new_password {
        Some(pw) => html(&UsersPage {
            c: Common::new(&auth, "/users"),
            users: ctx.db.list_users().await?,
            created: Some((after.name.to_string(), pw.expose_secret().to_owned())),
        }),
        None => Ok(Redirect::to("/users").into_response()),
    }
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    c: Common,
    tokens: Vec<ApiToken>,
    new_token: Option<String>,
}

async fn account(
    State(ctx): State<Ctx>,
    auth: Auth,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    html(&AccountPage {
        c: Common::new(&auth, &uri.to_string()),
        tokens: ctx.db.list_api_tokens(auth.user.id).await?,
        new_token: None,
    })
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    current: String,
    new: String,
}

async fn change_password(
    State(ctx): State<Ctx>,
    auth: Auth,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    if form.new.chars().count() < 12 {
        return Err(WebError::BadRequest(
            "the new password must have at least 12 characters".into(),
        ));
    }
    let current = SecretString::from(form.current);
    let stored = auth.user.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || {
        telegaz_auth::verify_password(&stored, &current).unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    if !ok {
        return Err(WebError::BadRequest("the current password is wrong".into()));
    }
    let h = hash(&SecretString::from(form.new)).await?;
    let me = auth.user.clone();
    ctx.db
        .update_user(
            me.id,
            UserUpdate {
                password_hash: Some(h),
                ..UserUpdate::default()
            },
        )
        .await?;
    audit(&ctx, &auth, &me, "own password changed".into()).await?;
    // Every session of the user ended with the change: sign in again.
    Ok(Redirect::to("/login?next=%2Faccount").into_response())
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    label: String,
}

async fn create_token(
    State(ctx): State<Ctx>,
    auth: Auth,
    Form(form): Form<TokenForm>,
) -> Result<Response, WebError> {
    let label = match form.label.trim() {
        "" => "web".to_owned(),
        l if l.chars().count() > 100 => {
            return Err(WebError::BadRequest(
                "the purpose is longer than 100 characters".into(),
            ));
        }
        l => l.to_owned(),
    };
    let token = generate_token();
    let t = ctx
        .db
        .create_api_token(auth.user.id, &label, &token_sha256(&token))
        .await?;
    let me = auth.user.clone();
    audit(
        &ctx,
        &auth,
        &me,
        format!("API token #{} ({label}) created", t.id),
    )
    .await?;
    html(&AccountPage {
        c: Common::new(&auth, "/account"),
        tokens: ctx.db.list_api_tokens(auth.user.id).await?,
        new_token: Some(token),
    })
}

async fn revoke_token(
    State(ctx): State<Ctx>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    ctx.db.revoke_api_token(auth.user.id, id).await?;
    let me = auth.user.clone();
    audit(&ctx, &auth, &me, format!("API token #{id} revoked")).await?;
    Ok(Redirect::to("/account").into_response())
}

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/users", get(list).post(add))
        .route("/users/{id}", post(change))
        .route("/account", get(account))
        .route("/account/password", post(change_password))
        .route("/account/tokens", post(create_token))
        .route("/account/tokens/{id}/revoke", post(revoke_token))
}
