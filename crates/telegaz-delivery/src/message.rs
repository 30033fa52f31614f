//! The e-mail of a report: subject, a short text and the report attached.

use jiff::civil::Date;
use lettre::message::header::ContentType;
use lettre::message::{Attachment as LettreAttachment, Mailbox, MultiPart, SinglePart};
use telegaz_config::{DeliveryConfig, DeliveryFormat};
use telegaz_reports::Report;

use crate::MailError;

/// A file attached to an e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// An e-mail ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub subject: String,
    /// Plain text, UTF-8.
    pub body: String,
    pub attachment: Attachment,
}

impl Email {
    /// The MIME message: `multipart/mixed` with the text and the attachment (base64).
    pub fn to_message(&self) -> Result<lettre::Message, MailError> {
        let content_type = ContentType::parse(&self.attachment.content_type)
            .map_err(|e| MailError::Message(format!("content type: {e}")))?;
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(self.subject.clone());
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(self.body.clone()))
                    .singlepart(
                        LettreAttachment::new(self.attachment.filename.clone())
                            .body(self.attachment.bytes.clone(), content_type),
                    ),
            )
            .map_err(|e| MailError::Message(e.to_string()))
    }
}

/// `ДД.ММ.ГГГГ`.
pub fn ru_date(d: Date) -> String {
    format!("{:02}.{:02}.{:04}", d.day(), d.month(), d.year())
}

/// The subject of a delivery's e-mail for a gas day.
pub fn subject(delivery: &DeliveryConfig, gas_day: Date) -> String {
    let template = delivery
        .subject
        .as_deref()
        .unwrap_or(DeliveryConfig::DEFAULT_SUBJECT);
    template
        .replace("{name}", &delivery.name)
        .replace("{gas_day_iso}", &gas_day.to_string())
        .replace("{gas_day}", &ru_date(gas_day))
        .replace("{devices}", &delivery.devices.join(", "))
}

/// The attachment's file name and MIME type.
pub fn attachment_name(delivery: &DeliveryConfig, gas_day: Date) -> (String, &'static str) {
    match delivery.format {
        DeliveryFormat::Xlsx => (
            format!("{}_{gas_day}.xlsx", delivery.name),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        DeliveryFormat::Csv1251 => (
            format!("{}_{gas_day}.csv", delivery.name),
            "text/csv; charset=windows-1251",
        ),
    }
}

fn decimal_ru(d: &telegaz_domain::Decimal) -> String {
    d.to_string().replace('.', ",")
}

/// The text of the e-mail: what is attached and each device's volume for the day.
pub fn body(delivery: &DeliveryConfig, gas_day: Date, report: &Report, filename: &str) -> String {
    let mut out = format!(
        "Отчёт «{}» за газовые сутки {} (от контрактного часа {} до контрактного часа следующих суток, местное время устройств).\n\n",
        delivery.name,
        ru_date(gas_day),
        ru_date(gas_day)
    );
    for dev in &report.devices {
        let v = &dev.totals.values;
        out.push_str(&format!("{}: ", dev.name));
        match &v.vb_m3 {
            Some(vb) => out.push_str(&format!("Vст = {} м³", decimal_ru(vb))),
            None => out.push_str("объём неизвестен"),
        }
        if let Some(vm) = &v.vm_m3 {
            out.push_str(&format!(", Vраб = {} м³", decimal_ru(vm)));
        }
        out.push_str(if v.complete {
            "; данные полные"
        } else {
            "; данные неполные"
        });
        if !v.flags.is_empty() {
            let flags: Vec<&str> = v.flags.iter().map(|f| f.russian()).collect();
            out.push_str(&format!("; {}", flags.join(", ")));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "\nОтчёт во вложении: {filename}.\nПисьмо отправлено автоматически сервером Telegaz.\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use telegaz_config::ReportRows;

    fn delivery(subject: Option<&str>) -> DeliveryConfig {
        DeliveryConfig {
            name: "daily-kotelnaya".into(),
            devices: vec!["kotelnaya-1".into(), "kotelnaya-2".into()],
            recipients: vec!["a@example.ru".into()],
            format: DeliveryFormat::Xlsx,
            rows: ReportRows::Daily,
            delay: std::time::Duration::ZERO,
            subject: subject.map(str::to_owned),
        }
    }

    #[test]
    fn subjects_and_file_names() {
        let day: Date = "2026-01-15".parse().unwrap();
        assert_eq!(
            subject(&delivery(None), day),
            "Газовые сутки 15.01.2026: kotelnaya-1, kotelnaya-2"
        );
        assert_eq!(
            subject(&delivery(Some("{name} {gas_day_iso} {gas_day}")), day),
            "daily-kotelnaya 2026-01-15 15.01.2026"
        );
        let (name, ct) = attachment_name(&delivery(None), day);
        assert_eq!(name, "daily-kotelnaya_2026-01-15.xlsx");
        assert!(ct.contains("spreadsheetml"));
    }

    #[test]
    fn the_message_has_the_text_and_a_base64_attachment() {
        let email = Email {
            from: "Telegaz <telegaz@example.ru>".parse().unwrap(),
            to: vec![
                "a@example.ru".parse().unwrap(),
                "Иванов <ivanov@example.ru>".parse().unwrap(),
            ],
            subject: "Газовые сутки 15.01.2026: unit1".into(),
            body: "Отчёт во вложении.\n".into(),
            attachment: Attachment {
                filename: "d_2026-01-15.xlsx".into(),
                content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                    .into(),
                bytes: b"PK\x03\x04\x00\xff binary".to_vec(),
            },
        };
        let m = email.to_message().unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("multipart/mixed"), "{raw}");
        assert!(raw.contains("Content-Transfer-Encoding: base64"), "{raw}");
        assert!(raw.contains("filename=\"d_2026-01-15.xlsx\""), "{raw}");
        assert!(raw.contains("ivanov@example.ru"), "{raw}");
        assert!(raw.contains("Subject: =?utf-8?"), "encoded subject: {raw}");
        assert!(raw.contains("UEsDBAD/"), "base64 of the bytes: {raw}");
    }
}
