//! The OpenAPI 3.0 document of the API, made from the same table as the
//! router ([`super::endpoints`]): paths, methods, path parameters and the
//! access each operation needs come from the table; each operation's
//! description, query parameters, body and responses from [`ops`].

use axum::Json;
use serde_json::{Map, Value, json};

use super::Access;

/// `GET /openapi.json` (public).
pub(crate) async fn serve() -> Json<Value> {
    Json(document())
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| match name {
            "id" => json!({
                "name": "id", "in": "path", "required": true,
                "description": "Upload id.",
                "schema": { "type": "integer", "format": "int64" },
                "example": 1,
            }),
            "name" => json!({
                "name": "name", "in": "path", "required": true,
                "description": "Device name.",
                "schema": { "type": "string" },
                "example": "unit-17",
            }),
            "ban" => json!({
                "name": "ban", "in": "path", "required": true,
                "description": "Ban id.",
                "schema": { "type": "integer", "format": "int64" },
                "example": 1,
            }),
            "alert" => json!({
                "name": "alert", "in": "path", "required": true,
                "description": "Alert id.",
                "schema": { "type": "integer", "format": "int64" },
                "example": 1,
            }),
            other => json!({
                "name": other, "in": "path", "required": true,
                "schema": { "type": "string" },
            }),
        })
        .collect()
}

/// The whole document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for e in super::endpoints() {
        let mut op = (e.doc)();
        let mut params = path_params(e.path);
        if let Some(Value::Array(query)) = op.get("parameters") {
            params.extend(query.iter().cloned());
        }
        if let Some(obj) = op.as_object_mut() {
            if params.is_empty() {
                obj.remove("parameters");
            } else {
                obj.insert("parameters".into(), Value::Array(params));
            }
            let responses = obj.entry("responses").or_insert_with(|| json!({}));
            match e.access {
                Access::Public => {
                    obj.insert("security".into(), json!([]));
                }
                Access::Read => {
                    responses["401"] = json!({ "$ref": "#/components/responses/Unauthorized" });
                }
                Access::Change | Access::Admin => {
                    responses["401"] = json!({ "$ref": "#/components/responses/Unauthorized" });
                    responses["403"] = json!({ "$ref": "#/components/responses/Forbidden" });
                }
            }
            let role = e.access.role().map_or("anyone", |r| r.as_str());
            obj.insert("x-required-role".into(), role.into());
        }
        let item = paths.entry(e.path.to_owned()).or_insert_with(|| json!({}));
        item[e.method.as_str().to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Telegaz REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Devices, uploads, readings, gas days, reports and the audit trail of a Telegaz server. \
    Authenticate with an API token (`Authorization: Bearer TOKEN`, made by `telegaz user token`). \
    A browser session cookie works too, but then every state-changing request must carry the session's CSRF token in `X-CSRF-Token`. \
    Viewers read; operators and administrators also change devices and re-parse uploads; administrators manage the ban list of device logins. \
    Errors are `{\"error\": \"...\"}`. Local (device) times are written without an offset (`2026-01-14T12:00:00`); instants are RFC 3339 (UTC); \
    volumes are m³ at standard (vb) and measurement (vm) conditions.",
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearerAuth": [] }, { "cookieAuth": [] }],
        "tags": [
            { "name": "devices" }, { "name": "data" }, { "name": "uploads" },
            { "name": "reports" }, { "name": "audit" }, { "name": "fleet" }, { "name": "bans" }, { "name": "meta" },
        ],
        "paths": paths,
        "components": components(),
    })
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable(t: &str) -> Value {
    json!({ "type": t, "nullable": true })
}

fn components() -> Value {
    let string = json!({ "type": "string" });
    let int = json!({ "type": "integer" });
    let boolean = json!({ "type": "boolean" });
    let number = json!({ "type": "number", "nullable": true });
    let instant = json!({ "type": "string", "format": "date-time" });
    let date = json!({ "type": "string", "format": "date" });
    let local_time = json!({ "type": "string", "example": "2026-01-14T12:00:00",
        "description": "Local time of the device, no offset." });
    let flags = json!({ "type": "array", "items": { "type": "string",
        "enum": ["counter_decreased", "daily_mismatch", "missing_hours", "conflicting_readings", "implausible_value"] } });
    let states = json!({ "type": "string",
        "enum": ["silent", "never", "alarm", "quarantined", "late", "ok", "disabled"] });
    let networks = json!({ "type": "array", "items": { "type": "string", "example": "10.64.0.0/16" },
        "description": "Source networks (CIDR) the device may connect from; empty: any." });
    json!({
        "securitySchemes": {
            "bearerAuth": { "type": "http", "scheme": "bearer",
                "description": "An API token of a user (`telegaz user token`)." },
            "cookieAuth": { "type": "apiKey", "in": "cookie", "name": "tg_session",
                "description": "A browser session; state-changing requests also need the X-CSRF-Token header." },
        },
        "responses": {
            "BadRequest": error_response("The request is malformed (bad parameter, range, period or body)."),
            "Unauthorized": error_response("Nobody is signed in: send an API token."),
            "Forbidden": error_response("The caller's role does not allow this, or a session request lacks its CSRF token."),
            "NotFound": error_response("No such device or upload."),
            "Conflict": error_response("The change conflicts with what is stored (e.g. the name is taken)."),
            "Unprocessable": error_response("Understood, but cannot be done (e.g. no data in the period, or a JSON body of the wrong shape)."),
        },
        "schemas": {
            "Error": { "type": "object", "required": ["error"],
                "properties": { "error": { "type": "string" } } },
            "Device": { "type": "object", "properties": {
                "id": int, "name": string, "login": string,
                "title": { "type": "string", "description": "Free text; shown escaped." },
                "enabled": boolean, "allowed_networks": networks,
                "time_zone": { "type": "string", "example": "Europe/Moscow" },
                "contract_hour": { "type": "integer", "minimum": 0, "maximum": 23 },
                "created_at": instant, "state": states,
                "last_contact": { "type": "string", "format": "date-time", "nullable": true },
                "newest_data": { "type": "string", "nullable": true, "description": "Local time of the newest hourly reading." },
                "problem_uploads": int,
            } },
            "DeviceList": { "type": "object", "properties": {
                "devices": { "type": "array", "items": schema_ref("Device") } } },
            "NewDevice": { "type": "object", "required": ["name"], "additionalProperties": false, "properties": {
                "name": { "type": "string", "description": "Latin letters, digits, - _ . @" },
                "login": { "type": "string", "description": "FTP login; the name when absent." },
                "title": string, "allowed_networks": networks,
                "time_zone": { "type": "string", "default": "Europe/Moscow" },
                "contract_hour": { "type": "integer", "minimum": 0, "maximum": 23, "default": 10 },
                "password": { "type": "string", "description": "FTP password; generated (and returned once) when absent." },
            } },
            "DevicePatch": { "type": "object", "additionalProperties": false, "minProperties": 1, "properties": {
                "title": string, "enabled": boolean, "allowed_networks": networks,
                "time_zone": string,
                "contract_hour": { "type": "integer", "minimum": 0, "maximum": 23 },
            } },
            "DeviceCreated": { "type": "object", "properties": {
                "device": schema_ref("Device"),
                "password": { "type": "string", "description": "The generated password, shown only in this response (absent when one was given)." },
            } },
            "PasswordRequest": { "type": "object", "additionalProperties": false, "properties": {
                "password": { "type": "string", "description": "The new password; generated when absent." } } },
            "PasswordChanged": { "type": "object", "properties": {
                "device": string, "login": string, "password_changed": boolean,
                "password": { "type": "string", "description": "The generated password, shown only in this response." },
            } },
            "IngestInfo": { "type": "object", "nullable": true, "properties": {
                "status": { "type": "string", "enum": ["pending", "parsed", "quarantined", "failed"] },
                "format": nullable("string"),
                "records": { "type": "object", "properties": {
                    "total": int, "new": int, "duplicate": int, "conflicting": int } },
                "events": int, "reason": nullable("string"), "truncated": boolean,
                "model": nullable("string"), "serial": nullable("string"),
            } },
            "Upload": { "type": "object", "properties": {
                "id": int, "device_id": nullable("integer"), "device": nullable("string"),
                "original_name": string,
                "original_name_hex": { "type": "string", "description": "The exact bytes of the name, hex, when they were not UTF-8." },
                "path": string, "final_path": string,
                "mode": { "type": "string", "enum": ["store", "store_unique", "append", "resume"] },
                "size": int, "sha256": nullable("string"),
                "status": { "type": "string", "enum": ["receiving", "complete", "partial", "recovered"] },
                "reason": nullable("string"), "duplicate_of": nullable("integer"),
                "resumed_from": nullable("integer"), "peer": nullable("string"),
                "session": nullable("string"), "started_at": instant,
                "received_at": { "type": "string", "format": "date-time", "nullable": true },
                "deleted_by_device": boolean, "ingest": schema_ref("IngestInfo"),
            } },
            "UploadList": { "type": "object", "properties": {
                "uploads": { "type": "array", "items": schema_ref("Upload") },
                "next_before": { "type": "integer", "nullable": true,
                    "description": "Pass as `before` for the next (older) page; null on the last page." },
            } },
            "Reparse": { "type": "object", "properties": {
                "upload_id": int, "ingest": { "type": "string", "enum": ["pending"] } } },
            "HourlyReading": { "type": "object", "properties": {
                "hour_end_local": local_time, "vb_m3": number, "vm_m3": number,
                "p_kpa": number, "t_c": number, "flags": flags } },
            "Readings": { "type": "object", "properties": {
                "device": string, "time_zone": string, "from": date, "to": date,
                "readings": { "type": "array", "items": schema_ref("HourlyReading") } } },
            "GasDay": { "type": "object", "properties": {
                "gas_day": date, "vb_m3": { "type": "number" }, "vm_m3": { "type": "number" },
                "hours": int, "complete": boolean, "final": boolean,
                "device_vb_m3": number, "flags": flags } },
            "Daily": { "type": "object", "properties": {
                "device": string, "time_zone": string, "contract_hour": int, "from": date, "to": date,
                "days": { "type": "array", "items": schema_ref("GasDay") } } },
            "Event": { "type": "object", "properties": {
                "local_time": local_time, "record_no": nullable("integer"),
                "code": int, "code_hex": { "type": "string", "example": "0x8104" },
                "utc_offset_seconds": nullable("integer"),
                "check": { "type": "string", "enum": ["ok", "failed", "absent"] },
                "check_text": nullable("string"), "line": int } },
            "Events": { "type": "object", "properties": {
                "device": string, "time_zone": string, "from": date, "to": date,
                "events": { "type": "array", "items": schema_ref("Event") } } },
            "Report": { "type": "object", "description": "The report as `telegaz report --format json` writes it.",
                "properties": { "period": { "type": "object" }, "rows": string,
                    "generated_at": instant, "devices": { "type": "array", "items": { "type": "object" } } } },
            "DayCompleteness": { "type": "object", "properties": {
                "device": string, "gas_day": date, "start_local": local_time, "end_local": local_time,
                "expected_hours": int, "present_hours": int, "pending_hours": int,
                "missing_hour_ends": { "type": "array", "items": local_time },
                "missing_readings": { "type": "array", "items": local_time },
                "complete": boolean, "final": boolean } },
            "Completeness": { "type": "object", "properties": {
                "period": string, "days": { "type": "array", "items": schema_ref("DayCompleteness") } } },
            "AuditEvent": { "type": "object", "properties": {
                "id": int, "at": instant, "kind": { "type": "string" },
                "session": nullable("string"), "peer": nullable("string"),
                "device_id": nullable("integer"), "device": nullable("string"),
                "login": nullable("string"), "upload_id": nullable("integer"),
                "outcome": string, "detail": string } },
            "Alert": { "type": "object", "properties": {
                "id": int, "key": string,
                "kind": { "type": "string", "enum": ["silent", "missing_hours", "limit", "corrector_event", "upload_problem", "server_health"] },
                "severity": { "type": "string", "enum": ["info", "warning", "critical"] },
                "device_id": nullable("integer"), "device": nullable("string"),
                "title": string, "detail": string,
                "state": { "type": "string", "enum": ["open", "acknowledged", "resolved"] },
                "opened_at": instant,
                "acknowledged_at": { "type": "string", "format": "date-time", "nullable": true },
                "acknowledged_by": nullable("string"),
                "resolved_at": { "type": "string", "format": "date-time", "nullable": true } } },
            "AlertList": { "type": "object", "properties": {
                "alerts": { "type": "array", "items": schema_ref("Alert") },
                "next_before": { "type": "integer", "nullable": true } } },
            "AuditList": { "type": "object", "properties": {
                "events": { "type": "array", "items": schema_ref("AuditEvent") },
                "next_before": { "type": "integer", "nullable": true } } },
            "FleetRow": { "type": "object", "properties": {
                "name": string, "title": string, "login": string, "state": states,
                "last_contact": { "type": "string", "format": "date-time", "nullable": true },
                "newest_data": nullable("string"), "problem_uploads": int,
                "yesterday": { "type": "object", "nullable": true, "properties": {
                    "gas_day": date, "vb_m3": number, "hours": int, "complete": boolean, "final": boolean } } } },
            "Ban": { "type": "object", "properties": {
                "id": int,
                "address": { "type": "string", "nullable": true, "description": "Client IP address; null: every address." },
                "login": { "type": "string", "nullable": true, "description": "Login; null: every login from the address." },
                "reason": string,
                "created_by": { "type": "string", "description": "`system` (failed logins), `cli`, `web:<user>` or `api:<user>`." },
                "created_at": instant,
                "expires_at": { "type": "string", "format": "date-time", "nullable": true, "description": "Null: until lifted." },
                "repeat": { "type": "integer", "description": "Earlier automatic bans of the same address and login within login_policy.repeat_lookback." },
                "lifted_at": { "type": "string", "format": "date-time", "nullable": true },
                "lifted_by": nullable("string") } },
            "BanList": { "type": "object", "properties": {
                "bans": { "type": "array", "items": schema_ref("Ban") } } },
            "NewBan": { "type": "object", "additionalProperties": false,
                "description": "An address, a login, or both.",
                "properties": {
                    "address": string, "login": string,
                    "for": { "type": "string", "description": "How long: 30m, 12h, 7d; absent: until lifted." },
                    "reason": string } },
            "Fleet": { "type": "object", "properties": {
                "rows": { "type": "array", "items": schema_ref("FleetRow") },
                "total": int, "matching": int, "page": int, "pages": int, "per": int,
                "counts": { "type": "object", "additionalProperties": { "type": "integer" } } } },
        },
    })
}

/// The operation objects, one per endpoint.
pub(crate) mod ops {
    use serde_json::{Value, json};

    use super::schema_ref;

    fn query(
        name: &str,
        required: bool,
        schema: Value,
        description: &str,
        example: Value,
    ) -> Value {
        let mut p = json!({
            "name": name, "in": "query", "required": required,
            "description": description, "schema": schema,
        });
        if !example.is_null() {
            p["example"] = example;
        }
        p
    }

    fn json_ok(status: &str, description: &str, schema: &str) -> (String, Value) {
        (
            status.to_owned(),
            json!({
                "description": description,
                "content": { "application/json": { "schema": schema_ref(schema) } },
            }),
        )
    }

    fn errors(codes: &[u16]) -> Vec<(String, Value)> {
        codes
            .iter()
            .map(|c| {
                let name = match c {
                    400 => "BadRequest",
                    404 => "NotFound",
                    409 => "Conflict",
                    _ => "Unprocessable",
                };
                (
                    c.to_string(),
                    json!({ "$ref": format!("#/components/responses/{name}") }),
                )
            })
            .collect()
    }

    fn op(
        id: &str,
        tag: &str,
        summary: &str,
        params: Vec<Value>,
        body: Option<Value>,
        responses: Vec<(String, Value)>,
    ) -> Value {
        let mut o = json!({
            "operationId": id, "tags": [tag], "summary": summary,
            "parameters": params,
            "responses": responses.into_iter().collect::<serde_json::Map<_, _>>(),
        });
        if let Some(b) = body {
            o["requestBody"] = b;
        }
        o
    }

    fn json_body(schema: &str, required: bool, example: Value) -> Value {
        json!({
            "required": required,
            "content": { "application/json": { "schema": schema_ref(schema), "example": example } },
        })
    }

    fn with(mut a: Vec<(String, Value)>, b: Vec<(String, Value)>) -> Vec<(String, Value)> {
        a.extend(b);
        a
    }

    fn range() -> Vec<Value> {
        vec![
            query(
                "from",
                true,
                json!({ "type": "string", "format": "date" }),
                "First local date of the device.",
                json!("2026-01-14"),
            ),
            query(
                "to",
                true,
                json!({ "type": "string", "format": "date" }),
                "Last local date, inclusive (at most 366 days after `from`).",
                json!("2026-01-16"),
            ),
        ]
    }

    fn paging() -> Vec<Value> {
        vec![
            query(
                "before",
                false,
                json!({ "type": "integer", "format": "int64" }),
                "Only ids below this (the `next_before` of the previous page).",
                Value::Null,
            ),
            query(
                "limit",
                false,
                json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }),
                "Rows per page.",
                Value::Null,
            ),
        ]
    }

    fn devices_and_period() -> Vec<Value> {
        vec![
            query(
                "device",
                true,
                json!({ "type": "array", "items": { "type": "string" } }),
                "Device name; repeat the parameter for several devices.",
                json!(["unit-17"]),
            ),
            query(
                "period",
                true,
                json!({ "type": "string" }),
                "`day:YYYY-MM-DD`, `month:YYYY-MM` or `range:YYYY-MM-DD..YYYY-MM-DD` (gas days).",
                json!("month:2026-01"),
            ),
        ]
    }

    pub(crate) fn openapi() -> Value {
        op(
            "openapi",
            "meta",
            "This document (no sign-in needed).",
            vec![],
            None,
            vec![(
                "200".into(),
                json!({ "description": "The OpenAPI document.",
                "content": { "application/json": { "schema": { "type": "object" } } } }),
            )],
        )
    }

    pub(crate) fn list_devices() -> Value {
        op(
            "listDevices",
            "devices",
            "All devices with their state.",
            vec![],
            None,
            vec![json_ok("200", "The devices, by name.", "DeviceList")],
        )
    }

    pub(crate) fn get_device() -> Value {
        op(
            "getDevice",
            "devices",
            "One device with its state.",
            vec![],
            None,
            with(
                vec![json_ok("200", "The device.", "Device")],
                errors(&[400, 404]),
            ),
        )
    }

    pub(crate) fn create_device() -> Value {
        op(
            "createDevice",
            "devices",
            "Register a device (its own FTP login). Without a password one is generated and returned once.",
            vec![],
            Some(json_body(
                "NewDevice",
                true,
                json!({
                "name": "unit-new", "title": "Boiler house 3", "time_zone": "Europe/Moscow",
                "contract_hour": 10, "allowed_networks": [] }),
            )),
            with(
                vec![json_ok("201", "Registered.", "DeviceCreated")],
                errors(&[400, 409, 422]),
            ),
        )
    }

    pub(crate) fn update_device() -> Value {
        op(
            "updateDevice",
            "devices",
            "Change a device: the fields given are changed.",
            vec![],
            Some(json_body(
                "DevicePatch",
                true,
                json!({ "title": "Boiler house 3, Lenina 1" }),
            )),
            with(
                vec![json_ok("200", "The changed device.", "Device")],
                errors(&[400, 404, 422]),
            ),
        )
    }

    pub(crate) fn rotate_password() -> Value {
        op(
            "rotatePassword",
            "devices",
            "Set a new FTP password (generated and returned once unless given). The body is optional.",
            vec![],
            Some(json_body("PasswordRequest", false, json!({}))),
            with(
                vec![json_ok("200", "Changed.", "PasswordChanged")],
                errors(&[400, 404]),
            ),
        )
    }

    pub(crate) fn readings() -> Value {
        op(
            "readings",
            "data",
            "Hourly volumes (as `telegaz readings --json`): hours ending after `from` 00:00 up to the midnight after `to`.",
            range(),
            None,
            with(
                vec![json_ok("200", "The hours, oldest first.", "Readings")],
                errors(&[400, 404]),
            ),
        )
    }

    pub(crate) fn daily() -> Value {
        op(
            "daily",
            "data",
            "Gas-day volumes (as `telegaz daily --json`) of the gas days `from..=to`.",
            range(),
            None,
            with(
                vec![json_ok("200", "The gas days, oldest first.", "Daily")],
                errors(&[400, 404]),
            ),
        )
    }

    pub(crate) fn events() -> Value {
        op(
            "events",
            "data",
            "Event-log rows from `from` 00:00 to the midnight after `to`.",
            range(),
            None,
            with(
                vec![json_ok("200", "The events, oldest first.", "Events")],
                errors(&[400, 404]),
            ),
        )
    }

    pub(crate) fn list_uploads() -> Value {
        let mut params = vec![
            query(
                "device",
                false,
                json!({ "type": "string" }),
                "Only this device's uploads.",
                Value::Null,
            ),
            query(
                "state",
                false,
                json!({ "type": "string", "enum": ["pending", "parsed", "quarantined", "failed"] }),
                "Only uploads whose ingest is in this state.",
                Value::Null,
            ),
            query(
                "status",
                false,
                json!({ "type": "string", "enum": ["receiving", "complete", "partial", "recovered"] }),
                "Only uploads whose transfer ended so.",
                Value::Null,
            ),
        ];
        params.extend(paging());
        op(
            "listUploads",
            "uploads",
            "Received files, newest first.",
            params,
            None,
            with(
                vec![json_ok("200", "A page of uploads.", "UploadList")],
                errors(&[400, 404]),
            ),
        )
    }

    pub(crate) fn get_upload() -> Value {
        op(
            "getUpload",
            "uploads",
            "One upload, with its ingest outcome.",
            vec![],
            None,
            with(
                vec![json_ok("200", "The upload.", "Upload")],
                errors(&[400, 404]),
            ),
        )
    }

    pub(crate) fn raw_upload() -> Value {
        op(
            "rawUpload",
            "uploads",
            "The file's bytes exactly as received, as an attachment named `upload-ID.bin` (the client's name in `filename*`).",
            vec![],
            None,
            with(
                vec![(
                    "200".into(),
                    json!({
                        "description": "The bytes.",
                        "headers": { "Content-Disposition": { "schema": { "type": "string" } } },
                        "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } },
                    }),
                )],
                errors(&[400, 404]),
            ),
        )
    }

    pub(crate) fn reparse_upload() -> Value {
        op(
            "reparseUpload",
            "uploads",
            "Queue a complete upload for parsing again.",
            vec![],
            None,
            with(
                vec![json_ok("202", "Queued.", "Reparse")],
                errors(&[400, 404, 409]),
            ),
        )
    }

    pub(crate) fn report() -> Value {
        let mut params = devices_and_period();
        params.push(query(
            "rows",
            false,
            json!({ "type": "string", "enum": ["hourly", "daily"], "default": "daily" }),
            "A row per hour or per gas day.",
            Value::Null,
        ));
        params.push(query("format", false,
            json!({ "type": "string", "enum": ["json", "csv", "csv-1251", "xlsx", "html"], "default": "json" }),
            "`csv-1251`: Windows-1251, `;` and decimal comma, as Russian Excel opens it.", Value::Null));
        op(
            "report",
            "reports",
            "A gas-day report (the engine and renderers of `telegaz report`). A period without any data is refused (422), never an empty file.",
            params,
            None,
            with(
                vec![(
                    "200".into(),
                    json!({
                        "description": "The report.",
                        "content": {
                            "application/json": { "schema": schema_ref("Report") },
                            "text/csv": { "schema": { "type": "string" } },
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": { "schema": { "type": "string", "format": "binary" } },
                            "text/html": { "schema": { "type": "string" } },
                        },
                    }),
                )],
                errors(&[400, 404, 422]),
            ),
        )
    }

    pub(crate) fn completeness() -> Value {
        op(
            "completeness",
            "reports",
            "Per device and gas day: the hours present, pending and missing.",
            devices_and_period(),
            None,
            with(
                vec![json_ok(
                    "200",
                    "Device by device, day by day.",
                    "Completeness",
                )],
                errors(&[400, 404, 422]),
            ),
        )
    }

    pub(crate) fn audit() -> Value {
        let mut params = vec![
            query(
                "since",
                false,
                json!({ "type": "string" }),
                "Only events at or after this instant (RFC 3339) or date (UTC midnight).",
                Value::Null,
            ),
            query(
                "until",
                false,
                json!({ "type": "string" }),
                "Only events before this instant or date.",
                Value::Null,
            ),
            query(
                "device",
                false,
                json!({ "type": "string" }),
                "Only this device's events.",
                Value::Null,
            ),
            query(
                "kind",
                false,
                json!({ "type": "string" }),
                "Only events of this kind (e.g. device_changed, login_failed).",
                Value::Null,
            ),
            query(
                "login",
                false,
                json!({ "type": "string" }),
                "Only events of this login (device login or user name).",
                Value::Null,
            ),
        ];
        params.extend(paging());
        op(
            "audit",
            "audit",
            "The audit trail, newest first.",
            params,
            None,
            with(
                vec![json_ok("200", "A page of events.", "AuditList")],
                errors(&[400, 404]),
            ),
        )
    }

    pub(crate) fn list_alerts() -> Value {
        let mut params = vec![
            query(
                "active",
                false,
                json!({ "type": "boolean", "default": true }),
                "Only alerts that are not resolved (false: all, newest first).",
                Value::Null,
            ),
            query(
                "device",
                false,
                json!({ "type": "string" }),
                "Only this device's alerts.",
                Value::Null,
            ),
            query(
                "kind",
                false,
                json!({ "type": "string" }),
                "Only alerts of this kind (silent, corrector_event, upload_problem, …).",
                Value::Null,
            ),
        ];
        params.extend(paging());
        op(
            "listAlerts",
            "alerts",
            "Alerts, newest first: silent units, corrector alarms, files not understood.",
            params,
            None,
            with(
                vec![json_ok("200", "A page of alerts.", "AlertList")],
                errors(&[400, 404]),
            ),
        )
    }

    pub(crate) fn ack_alert() -> Value {
        op(
            "acknowledgeAlert",
            "alerts",
            "Acknowledge an alert (someone takes it on). It is resolved by itself when its condition is over.",
            vec![],
            None,
            with(
                vec![json_ok("200", "The alert, acknowledged.", "Alert")],
                errors(&[404, 409]),
            ),
        )
    }

    pub(crate) fn fleet() -> Value {
        let params = vec![
            query(
                "q",
                false,
                json!({ "type": "string" }),
                "Search in name, login and title.",
                Value::Null,
            ),
            query(
                "state",
                false,
                json!({ "type": "string",
                "enum": ["silent", "never", "alarm", "quarantined", "late", "ok", "disabled"] }),
                "Only units in this state.",
                Value::Null,
            ),
            query(
                "sort",
                false,
                json!({ "type": "string", "enum": ["name", "contact", "state"], "default": "name" }),
                "Order.",
                Value::Null,
            ),
            query(
                "page",
                false,
                json!({ "type": "integer", "minimum": 1, "default": 1 }),
                "Page number.",
                Value::Null,
            ),
            query(
                "per",
                false,
                json!({ "type": "integer", "minimum": 1, "maximum": 500, "default": 50 }),
                "Rows per page.",
                Value::Null,
            ),
        ];
        op(
            "fleet",
            "fleet",
            "The fleet overview (as the fleet page): rows and counts per state.",
            params,
            None,
            with(
                vec![json_ok("200", "A page of the overview.", "Fleet")],
                errors(&[400]),
            ),
        )
    }

    // --- bans (abuse resistance) ---
    pub(crate) fn list_bans() -> Value {
        op(
            "listBans",
            "bans",
            "The ban list of device logins (FTP, TCP), newest first: bans after repeated failed logins (growing with repeats) and an operator's.",
            vec![
                query(
                    "active",
                    false,
                    json!({ "type": "boolean", "default": true }),
                    "Only bans in force (false: lifted and expired ones too).",
                    Value::Null,
                ),
                query(
                    "limit",
                    false,
                    json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }),
                    "Rows.",
                    Value::Null,
                ),
            ],
            None,
            with(vec![json_ok("200", "Bans.", "BanList")], errors(&[400])),
        )
    }

    pub(crate) fn create_ban() -> Value {
        op(
            "createBan",
            "bans",
            "Refuse logins from an address, of a login, or of a login from an address; at once, on every receiver.",
            vec![],
            Some(json_body(
                "NewBan",
                true,
                json!({ "address": "198.51.100.7", "for": "12h", "reason": "password guessing" }),
            )),
            with(vec![json_ok("201", "The ban.", "Ban")], errors(&[400, 422])),
        )
    }

    pub(crate) fn lift_ban() -> Value {
        op(
            "liftBan",
            "bans",
            "Lift a ban now (a lifted one stays as it is).",
            vec![],
            None,
            with(
                vec![json_ok("200", "The ban, lifted.", "Ban")],
                errors(&[404]),
            ),
        )
    }
    // --- end bans ---
}
