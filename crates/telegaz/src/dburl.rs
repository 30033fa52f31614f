//! Start-up checks of a PostgreSQL URL, for messages that say what to fix.
//!
//! Telegaz does not start without its database: when PostgreSQL cannot be
//! reached it exits at once with a message (and exit code 1), so that the
//! service manager (`Restart=on-failure` under systemd) tries again. Once it
//! runs, a database that goes away is waited for (uploads go to the outage
//! journal).

use std::time::Duration;

/// What to check when PostgreSQL does not answer.
pub const POSTGRES_HINT: &str = "Check that PostgreSQL is running and accepts TCP connections on this host and port (listen_addresses and port in postgresql.conf, pg_hba.conf, firewall), that the database exists, and that the user and password are right. Telegaz does not start without its database; a service manager (systemd Restart=on-failure) starts it again";

const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Where a `postgres://` URL points: `Ok(None)` when it names no single TCP
/// host (a Unix socket, several hosts), `Err` when it is malformed.
pub fn postgres_host_port(url: &str) -> Result<Option<(String, u16)>, String> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or("it has no scheme")?;
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    if query
        .split('&')
        .any(|kv| kv.starts_with("host=") || kv.starts_with("hostaddr="))
    {
        return Ok(None);
    }
    let authority = before_query.split('/').next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() || host_port.contains(',') {
        return Ok(None);
    }
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or("an IPv6 address in it lacks its closing ']'")?;
        (h, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Ok(None);
    }
    let port = match port {
        None | Some("") => 5432,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("the port {p:?} is not a number from 1 to 65535"))?,
    };
    Ok(Some((host.to_owned(), port)))
}

/// Fail with a clear message when the URL is malformed or nothing answers at
/// its host and port.
pub async fn check_postgres_reachable(url: &str, shown: &str) -> anyhow::Result<()> {
    let (host, port) = match postgres_host_port(url) {
        Ok(Some(hp)) => hp,
        Ok(None) => return Ok(()),
        Err(why) => anyhow::bail!(
            "the database URL {shown} is malformed: {why}. Write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE (--database-url, TELEGAZ_DATABASE_URL or database_url in the configuration file)"
        ),
    };
    match tokio::time::timeout(
        CONNECT_WAIT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => anyhow::bail!(
            "cannot reach PostgreSQL at {host}:{port} ({shown}): {e}. {POSTGRES_HINT}"
        ),
        Err(_) => anyhow::bail!(
            "cannot reach PostgreSQL at {host}:{port} ({shown}): no answer within {} s. {POSTGRES_HINT}",
            CONNECT_WAIT.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_host_and_port() {
        let hp = |u| postgres_host_port(u);
        assert_eq!(
            hp("postgres://u:p@db.example:6543/tg"),
            Ok(Some(("db.example".into(), 6543)))
        );
        assert_eq!(hp("postgresql://db/tg"), Ok(Some(("db".into(), 5432))));
        assert_eq!(
            hp("postgres://[::1]:5433/tg"),
            Ok(Some(("::1".into(), 5433)))
        );
        assert_eq!(hp("postgres:///tg?host=/run/postgresql"), Ok(None));
        assert_eq!(hp("postgres://a:1,b:2/tg"), Ok(None));
        assert!(hp("postgres://u:p@db:notaport/tg").is_err());
        assert!(hp("postgres://u:p@db:70000/tg").is_err());
    }
}
