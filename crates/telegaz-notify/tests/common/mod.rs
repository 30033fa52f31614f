//! What the tests share: notifications to send.
#![allow(dead_code)]

use telegaz_domain::{AlertKind, Notification, NotificationEvent, Severity};

pub fn opened(id: i64, device: &str) -> Notification {
    Notification {
        id,
        event: NotificationEvent::Opened,
        alert_id: Some(7),
        kind: AlertKind::Silent,
        severity: Severity::Warning,
        device: Some(device.into()),
        title: format!("{device}: нет связи"),
        text: format!(
            "Узел {device} не передаёт данные с 15.01.2026 06:00 (ожидался сеанс в 07:00).\nПроверьте питание & связь <GSM>."
        ),
        at: "2026-01-15T09:00:00Z".parse().unwrap(),
        devices: vec![],
    }
}

pub fn resolved(id: i64, device: &str) -> Notification {
    Notification {
        id,
        event: NotificationEvent::Resolved,
        title: format!("{device}: связь восстановлена"),
        text: format!("Узел {device} снова передаёт данные."),
        at: "2026-01-15T11:30:00Z".parse().unwrap(),
        ..opened(id, device)
    }
}

pub fn digest(id: i64, devices: &[&str]) -> Notification {
    Notification {
        id,
        event: NotificationEvent::Digest,
        alert_id: None,
        device: None,
        title: format!("{} узлов без связи", devices.len()),
        text: devices.join(", "),
        devices: devices.iter().map(|d| d.to_string()).collect(),
        ..opened(id, "x")
    }
}

/// The JSON every notifier but Telegram and e-mail sends for `opened(42, "kotelnaya-1")`.
pub fn opened_json() -> serde_json::Value {
    serde_json::json!({
        "source": "telegaz",
        "id": 42,
        "event": "opened",
        "alert_id": 7,
        "kind": "silent",
        "severity": "warning",
        "device": "kotelnaya-1",
        "title": "kotelnaya-1: нет связи",
        "text": "Узел kotelnaya-1 не передаёт данные с 15.01.2026 06:00 (ожидался сеанс в 07:00).\nПроверьте питание & связь <GSM>.",
        "at": "2026-01-15T09:00:00Z",
        "devices": []
    })
}
