//! Accounts registered in a real Telegaz store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use secrecy::SecretString;
use telegaz_sim::accounts::{self, Registered};

#[tokio::test]
async fn missing_devices_are_created_and_existing_ones_get_the_known_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = telegaz_store::connect(&url).await.unwrap();
    let mut list = accounts::generate(3, "sim-", 4);
    let done = accounts::register(&*db, &list).await.unwrap();
    assert_eq!(
        done,
        Registered {
            created: 3,
            updated: 0,
            unchanged: 0
        }
    );
    let again = accounts::register(&*db, &list).await.unwrap();
    assert_eq!(
        again,
        Registered {
            created: 0,
            updated: 0,
            unchanged: 3
        }
    );
    list[1].password = "another-password".into();
    let changed = accounts::register(&*db, &list).await.unwrap();
    assert_eq!(
        changed,
        Registered {
            created: 0,
            updated: 1,
            unchanged: 2
        }
    );
    for a in &list {
        let d = db.device_by_name(&a.name).await.unwrap().unwrap();
        assert_eq!(d.login.as_str(), a.login);
        assert!(d.enabled);
        let pw = SecretString::from(a.password.clone());
        assert!(telegaz_auth::verify_password(&d.password_hash, &pw).unwrap());
    }
}
