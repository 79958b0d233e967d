//! Several servers on one database: keys shared, revocations enforced everywhere within 1 s.

use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{code, Backend, TestApp};

/// Polls `whoami` on `app` until the token is refused as revoked; returns how long it took.
async fn time_until_revoked(app: &TestApp, token: &str, limit: Duration) -> Duration {
    crate::helpers::until_refused(&app.address, token, limit).await
}

async fn revocation_reaches_every_replica_within_a_second(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = a.replica().await;

    // Keys are shared: a token from A works on B and the other way round.
    let from_a = a.create_account(crate::helpers::sensor("sensor:a")).await;
    let from_b = b.create_account(crate::helpers::sensor("sensor:b")).await;
    for app in [&a, &b] {
        for t in [&from_a, &from_b] {
            assert_eq!(
                app.whoami(t["token"].as_str().unwrap()).await.0,
                StatusCode::OK
            );
        }
    }
    let jwks_a = a
        .send(Method::GET, "/.well-known/jwks.json", None, None)
        .await
        .2;
    let jwks_b = b
        .send(Method::GET, "/.well-known/jwks.json", None, None)
        .await
        .2;
    assert_eq!(jwks_a, jwks_b);
    assert_eq!(
        jwks_a["keys"].as_array().unwrap().len(),
        2,
        "the active key and the next one, generated once"
    );

    // Revoke on A: B refuses within 1 s. Then the other way round.
    for (revoker, other, account) in [(&a, &b, &from_a), (&b, &a, &from_b)] {
        let token = account["token"].as_str().unwrap();
        let (status, _) = revoker
            .admin(
                Method::DELETE,
                &format!("/service-accounts/{}", account["identity_id"]),
                Some(&json!({"reason": "test"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            code(&revoker.whoami(token).await.1),
            "token_revoked",
            "at once on the revoking replica"
        );
        let took = time_until_revoked(other, token, Duration::from_secs(1)).await;
        eprintln!("{backend:?}: revocation reached the other replica in {took:?}");
    }

    // Single-token revocation propagates too.
    let account = a.create_account(crate::helpers::sensor("sensor:one")).await;
    let path = format!(
        "/service-accounts/{}/tokens/{}",
        account["identity_id"],
        account["token_id"].as_str().unwrap()
    );
    assert_eq!(a.admin(Method::DELETE, &path, None).await.0, StatusCode::OK);
    time_until_revoked(
        &b,
        account["token"].as_str().unwrap(),
        Duration::from_secs(1),
    )
    .await;
}

/// PostgreSQL commits transactions in any order. A revocation whose transaction started
/// first but commits after a later one must still reach the other replica.
#[actix_web::test]
async fn postgres_revocation_committed_out_of_order_is_not_missed() {
    let Some(_) = crate::helpers::pg_url() else {
        eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
        return;
    };
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.replica().await;
    let slow = a
        .create_account(crate::helpers::sensor("sensor:slow"))
        .await;
    let fast = a
        .create_account(crate::helpers::sensor("sensor:fast"))
        .await;
    let url = a.storage.pg.as_ref().unwrap().url.clone();

    let insert = |account: &serde_json::Value| {
        format!(
            "INSERT INTO token_revocation (token_jti, identity_id, token_exp, revoked_at, reason) \
             VALUES ('{}', {}, now() + interval '1 day', now(), 'out of order')",
            account["token_id"].as_str().unwrap(),
            account["identity_id"]
        )
    };
    // The slow transaction gets its transaction id first and stays open.
    let (slow_sql, fast_sql) = (insert(&slow), insert(&fast));
    let (to_slow, from_main) = std::sync::mpsc::channel::<()>();
    let (slow_ready_tx, slow_ready) = std::sync::mpsc::channel::<()>();
    let slow_url = url.clone();
    let slow_thread = std::thread::spawn(move || {
        let mut conn = PgConnection::establish(&slow_url).unwrap();
        conn.transaction::<_, diesel::result::Error, _>(|c| {
            diesel::sql_query(slow_sql).execute(c)?;
            slow_ready_tx.send(()).unwrap();
            from_main.recv().unwrap();
            Ok(())
        })
        .unwrap();
    });
    slow_ready.recv().unwrap();
    // A later transaction commits first, and B polls past it.
    actix_web::web::block(move || {
        let mut conn = PgConnection::establish(&url).unwrap();
        diesel::sql_query(fast_sql).execute(&mut conn).unwrap();
    })
    .await
    .unwrap();
    time_until_revoked(&b, fast["token"].as_str().unwrap(), Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        b.whoami(slow["token"].as_str().unwrap()).await.0,
        StatusCode::OK,
        "not committed yet"
    );
    // Now the earlier transaction commits: B must still pick it up.
    to_slow.send(()).unwrap();
    actix_web::web::block(move || slow_thread.join().unwrap())
        .await
        .unwrap();
    time_until_revoked(&b, slow["token"].as_str().unwrap(), Duration::from_secs(1)).await;
}

crate::both_backends!(revocation_reaches_every_replica_within_a_second);
