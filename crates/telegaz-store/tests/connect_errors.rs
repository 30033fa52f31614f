#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step should stop the test
//! Database URLs that cannot work give a message that says why and what to
//! check, without the password. These need no database server.

use telegaz_store::StoreError;

async fn error_of(url: &str) -> StoreError {
    match telegaz_store::connect(url).await {
        Ok(_) => panic!("{url} opened"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_malformed_postgres_url_is_refused_with_its_form() {
    let e = error_of("postgres://tg:hunter2@db:notaport/telegaz").await;
    assert!(matches!(e, StoreError::UnsupportedUrl { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("postgres://tg:***@db:notaport/telegaz"),
        "{text}"
    );
    assert!(
        text.contains("postgres://USER:PASSWORD@HOST:PORT/DATABASE"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_named_with_the_reason() {
    // Port 1 on this machine: nothing listens there, the refusal is immediate.
    let e = error_of("postgres://tg:hunter2@127.0.0.1:1/telegaz").await;
    assert!(matches!(e, StoreError::Connect { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("cannot connect to the database at postgres://tg:***@127.0.0.1:1/telegaz"),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(text.contains("running and reachable"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
}

#[tokio::test]
async fn a_password_with_a_raw_slash_stays_hidden() {
    let e = error_of("postgres://tg:se/cr@t@127.0.0.1:1/telegaz").await;
    let text = e.to_string();
    assert!(!text.contains("se/cr"), "{text}");
    assert!(!format!("{e:?}").contains("se/cr"), "{e:?}");
}

#[tokio::test]
async fn other_schemes_are_not_supported() {
    let e = error_of("mysql://tg:hunter2@db/telegaz").await;
    assert!(matches!(e, StoreError::UnsupportedUrl { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("sqlite://FILE or postgres://"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
