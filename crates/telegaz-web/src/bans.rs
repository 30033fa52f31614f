//! What the ban page and the ban API share: making and lifting a ban, with
//! its audit record.

use std::time::Duration;

use telegaz_domain::{AuditKind, Ban, NewBan, Timestamp, ban_address, ban_clock};

use crate::Ctx;
use crate::error::WebError;

/// A ban as asked for (form or JSON): address and/or login, duration text
/// (`30m`, `12h`, `7d`; empty: until lifted), reason.
pub(crate) struct BanRequest<'a> {
    pub address: Option<&'a str>,
    pub login: Option<&'a str>,
    pub duration: Option<&'a str>,
    pub reason: Option<&'a str>,
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// Record the ban `req` asks for, made by `by` (`web:<user>`, `api:<user>`).
pub(crate) async fn create(ctx: &Ctx, req: BanRequest<'_>, by: &str) -> Result<Ban, WebError> {
    let address = non_empty(req.address)
        .map(ban_address)
        .transpose()
        .map_err(WebError::BadRequest)?;
    let login = non_empty(req.login).map(str::to_owned);
    if address.is_none() && login.is_none() {
        return Err(WebError::BadRequest(
            "name an address, a login, or both".into(),
        ));
    }
    let now = Timestamp::now();
    let expires_at = match non_empty(req.duration) {
        Some(text) => {
            let d: Duration = humantime::parse_duration(text).map_err(|e| {
                WebError::BadRequest(format!(
                    "{text:?} is not a duration ({e}): write 30m, 12h or 7d, or leave it empty for a ban until lifted"
                ))
            })?;
            let span = jiff::SignedDuration::try_from(d)
                .map_err(|e| WebError::BadRequest(format!("the duration is too long: {e}")))?;
            Some(
                now.checked_add(span)
                    .map_err(|e| WebError::BadRequest(format!("the duration is too long: {e}")))?,
            )
        }
        None => None,
    };
    let reason = non_empty(req.reason).unwrap_or("banned by an operator");
    if reason.chars().count() > 500 {
        return Err(WebError::BadRequest(
            "the reason is longer than 500 characters".into(),
        ));
    }
    let ban = ctx
        .db
        .create_ban(&NewBan {
            address,
            login,
            reason: reason.to_owned(),
            created_by: by.to_owned(),
            created_at: now,
            expires_at,
            repeat: 0,
        })
        .await?;
    ctx.db
        .insert_audit(&[ban.audit_event(AuditKind::BanCreated, by)])
        .await?;
    tracing::info!(ban = ban.id, by, target = %ban.target(), "ban made");
    Ok(ban)
}

/// Lift ban `id` (audited when this call lifted it).
pub(crate) async fn lift(ctx: &Ctx, id: i64, by: &str) -> Result<Ban, WebError> {
    let now = ban_clock();
    let ban = ctx.db.lift_ban(id, by, now).await?;
    if ban.lifted_at == Some(now) {
        ctx.db
            .insert_audit(&[ban.audit_event(AuditKind::BanLifted, by)])
            .await?;
        tracing::info!(ban = ban.id, by, target = %ban.target(), "ban lifted");
    }
    Ok(ban)
}
