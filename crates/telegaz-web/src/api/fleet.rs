//! The fleet overview, as the fleet page shows it.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::{ApiQuery, ApiResult, bad_request, local, num};
use crate::Ctx;
use crate::pages::fleet::{FleetQuery, UnitState};

const SORTS: [&str; 3] = ["name", "contact", "state"];

/// `GET /fleet`.
pub(crate) async fn fleet(
    State(ctx): State<Ctx>,
    ApiQuery(q): ApiQuery<FleetQuery>,
) -> ApiResult<Json<Value>> {
    if let Some(s) = q.state.as_deref().filter(|s| !s.is_empty())
        && UnitState::parse(s).is_none()
    {
        let known: Vec<&str> = UnitState::ALL.iter().map(|s| s.code()).collect();
        return Err(bad_request(format!(
            "unknown state {s:?} ({})",
            known.join(", ")
        )));
    }
    if let Some(s) = q.sort.as_deref().filter(|s| !s.is_empty())
        && !SORTS.contains(&s)
    {
        return Err(bad_request(format!(
            "unknown sort {s:?} ({})",
            SORTS.join(", ")
        )));
    }
    let f = crate::pages::fleet::fleet(&ctx, &q).await?;
    let rows: Vec<Value> = f
        .rows
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "title": r.title,
                "login": r.login,
                "state": r.state,
                "last_contact": r.last_contact,
                "newest_data": r.newest_data.map(local),
                "problem_uploads": r.problem_uploads,
                "yesterday": r.yesterday.as_ref().map(|y| json!({
                    "gas_day": y.gas_day,
                    "vb_m3": num(y.vb_m3),
                    "hours": y.hours,
                    "complete": y.complete,
                    "final": y.is_final,
                })),
            })
        })
        .collect();
    let mut counts = Map::new();
    for s in UnitState::ALL {
        let n = f
            .counts
            .iter()
            .find(|(x, _)| *x == s)
            .map_or(0, |(_, n)| *n);
        counts.insert(s.code().to_owned(), n.into());
    }
    Ok(Json(json!({
        "rows": rows,
        "total": f.total,
        "matching": f.matching,
        "page": f.page,
        "pages": f.pages,
        "per": f.per,
        "counts": counts,
    })))
}
