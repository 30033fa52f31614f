//! Russian by default, English on request: one table of phrases, looked up by
//! key from templates (`c.t(KEY)` with a literal key). A test checks that every key the
//! templates use is in the table.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The language of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Ru,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "ru" => Some(Lang::Ru),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Ru => Lang::En,
            Lang::En => Lang::Ru,
        }
    }
}

/// (key, Russian, English).
const PHRASES: &[(&str, &str, &str)] = &[
    ("app", "Телегаз", "Telegaz"),
    ("lang_switch", "English", "Русский"),
    ("nav_fleet", "Парк узлов", "Fleet"),
    ("nav_uploads", "Файлы", "Uploads"),
    ("nav_registry", "Реестр устройств", "Device registry"),
    ("nav_reports", "Отчёты", "Reports"),
    ("nav_profiles", "Профили", "Profiles"),
    ("nav_audit", "Журнал аудита", "Audit log"),
    ("nav_users", "Пользователи", "Users"),
    ("nav_account", "Учётная запись", "Account"),
    ("sign_in", "Войти", "Sign in"),
    ("sign_out", "Выйти", "Sign out"),
    ("user_name", "Имя пользователя", "User name"),
    ("password", "Пароль", "Password"),
    (
        "login_failed",
        "Неверное имя пользователя или пароль.",
        "Wrong user name or password.",
    ),
    (
        "login_blocked",
        "Слишком много неудачных попыток. Повторите позже.",
        "Too many failed attempts. Try again later.",
    ),
    ("signed_in_as", "Пользователь", "Signed in as"),
    ("role", "Роль", "Role"),
    ("device", "Устройство", "Device"),
    ("devices", "Устройства", "Devices"),
    ("title", "Описание (объект, адрес)", "Title (site, address)"),
    ("login", "Логин", "Login"),
    ("last_contact", "Последняя связь", "Last contact"),
    ("newest_data", "Новейшие данные", "Newest data"),
    ("state", "Состояние", "State"),
    (
        "yesterday_volume",
        "Объём за вчерашние газовые сутки, м³ (ст. у.)",
        "Yesterday's gas-day volume, m³ (std)",
    ),
    ("state_ok", "норма", "ok"),
    ("state_late", "опаздывает", "late"),
    ("state_silent", "молчит", "silent"),
    ("state_alarm", "авария", "alarm"),
    (
        "state_quarantined",
        "файлы в карантине",
        "quarantined files",
    ),
    ("state_never", "нет связи ни разу", "never heard from"),
    ("state_disabled", "отключено", "disabled"),
    ("search", "Поиск", "Search"),
    ("filter_all", "все", "all"),
    ("sort", "Сортировка", "Sort"),
    ("sort_name", "по имени", "by name"),
    ("sort_contact", "по последней связи", "by last contact"),
    ("sort_state", "по состоянию", "by state"),
    ("apply", "Показать", "Apply"),
    ("page", "Страница", "Page"),
    ("of", "из", "of"),
    ("prev", "← Назад", "← Previous"),
    ("next", "Вперёд →", "Next →"),
    ("total", "Всего", "Total"),
    ("none", "нет", "none"),
    ("never", "никогда", "never"),
    ("not_final", "сутки не закрыты", "day not final"),
    ("no_data", "нет данных", "no data"),
    (
        "forbidden",
        "Недостаточно прав для этого действия.",
        "You are not allowed to do this.",
    ),
    ("not_found", "Не найдено", "Not found"),
    ("bad_request", "Ошибка в запросе", "Bad request"),
    ("error", "Ошибка", "Error"),
    ("back", "Назад", "Back"),
    ("save", "Сохранить", "Save"),
    ("enabled", "Включено", "Enabled"),
    ("disabled", "Отключено", "Disabled"),
    ("created", "Создано", "Created"),
    ("status", "Статус", "Status"),
    ("format", "Формат", "Format"),
    ("records", "Записей", "Records"),
    ("reason", "Причина", "Reason"),
    ("size", "Размер", "Size"),
    ("received", "Получен", "Received"),
    ("file_name", "Имя файла", "File name"),
    ("time", "Время", "Time"),
    ("kind", "Тип", "Kind"),
    ("outcome", "Результат", "Outcome"),
    ("detail", "Подробности", "Details"),
    ("peer", "Адрес", "Address"),
    ("from", "С", "From"),
    ("to", "По", "To"),
];

/// Every phrase: the common table, then each page module's own.
fn all_phrases() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    PHRASES
        .iter()
        .chain(crate::pages::MODULE_PHRASES.iter().flat_map(|t| t.iter()))
}

fn table() -> &'static HashMap<&'static str, (&'static str, &'static str)> {
    static TABLE: OnceLock<HashMap<&'static str, (&'static str, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| all_phrases().map(|(k, ru, en)| (*k, (*ru, *en))).collect())
}

/// A phrase in a language.
pub(crate) fn lookup(lang: Lang, key: &str) -> &'static str {
    let found = table().get(key).copied();
    match (found, lang) {
        (Some((ru, _)), Lang::Ru) => ru,
        (Some((_, en)), Lang::En) => en,
        // A missing phrase shows its key (and the template test fails).
        (None, _) => "??",
    }
}

/// Whether a key is known (for the template test).
#[cfg(test)]
pub(crate) fn known(key: &str) -> bool {
    table().contains_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_used_in_templates_and_code_is_translated() {
        let mut missing = Vec::new();
        let dirs = [
            concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
            concat!(env!("CARGO_MANIFEST_DIR"), "/src"),
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/pages"),
        ];
        for dir in dirs {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                for part in text.split("t(\"").skip(1) {
                    if let Some(key) = part.split('"').next()
                        && !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
                        && !known(key)
                    {
                        missing.push(format!("{}: {key}", entry.path().display()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "untranslated keys: {missing:#?}");
    }

    #[test]
    fn keys_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (k, _, _) in all_phrases() {
            assert!(seen.insert(*k), "duplicate phrase key {k}");
        }
    }
}
