//! TLS to the server (feature `postgres-tls`), against the test server's own certificate: the
//! Debian package turns `ssl` on with a generated certificate for `localhost`. Stores that open
//! work in schemas of their own, dropped afterwards; the ones refused never reach a schema.

use nopos_webhooks::store::Store;
use nopos_webhooks::store::postgres::{ConnectError, PostgresStore};

use super::conformance::{config, endpoint, t0};
use super::{close, fresh_schema, url};

/// `url` with its `sslmode` set to `mode`, and `sslrootcert` to `root` when given (a parameter
/// given twice takes its last value).
fn with_tls(url: &str, mode: &str, root: Option<&str>) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    let mut url = format!("{url}{separator}sslmode={mode}");
    if let Some(root) = root {
        url.push_str("&sslrootcert=");
        url.push_str(root);
    }
    url
}

/// The test server's certificate file when it has TLS turned on, or `None` after saying so.
async fn server_certificate(url: &str) -> Option<String> {
    let pool = sqlx::PgPool::connect(&with_tls(url, "disable", None))
        .await
        .expect("a plain connection");
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&pool)
        .await
        .unwrap();
    let cert: String = sqlx::query_scalar("SHOW ssl_cert_file")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    if ssl != "on" {
        eprintln!("skipping PostgreSQL TLS test: the test server has `ssl = off`");
        return None;
    }
    Some(cert)
}

/// A store on `url` in a fresh schema (a refused connection never creates one).
async fn open_at(url: &str) -> Result<PostgresStore, ConnectError> {
    PostgresStore::connect_with_schema(url, &fresh_schema(), config()).await
}

#[tokio::test]
async fn connects_over_tls_and_verifies_the_server_certificate() {
    let Some(url) = url() else { return };
    let Some(server_cert) = server_certificate(&url).await else {
        return;
    };

    // `sslmode=require`: encrypted, whatever the certificate.
    let store = open_at(&with_tls(&url, "require", None))
        .await
        .expect("a TLS connection");
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(encrypted, "the store's connections use TLS");
    let ep = endpoint(&["*"], t0());
    store.create_endpoint(&ep).await.unwrap();
    assert_eq!(store.list_endpoints().await.unwrap(), vec![ep]);
    close(store).await;

    // `sslmode=verify-ca` with a root that did not sign the server's certificate: refused at
    // the handshake, and the error says why.
    let unrelated = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/postgres/unrelated-ca.pem"
    );
    let err = open_at(&with_tls(&url, "verify-ca", Some(unrelated)))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Connect(_)), "{err:?}");
    let cause = std::error::Error::source(&err).map(ToString::to_string);
    assert!(
        cause.as_deref().is_some_and(|c| c.contains("certificate")),
        "{cause:?}"
    );

    // Trusting the server's own certificate (readable when the server runs on this machine, as
    // in CI) lets the same mode through.
    if std::fs::metadata(&server_cert).is_ok() {
        let store = open_at(&with_tls(&url, "verify-ca", Some(&server_cert)))
            .await
            .expect("the server's certificate verifies against itself");
        close(store).await;
        // `verify-full` also checks the name: Debian's generated certificate names `localhost`,
        // not 127.0.0.1.
        if url.contains("@127.0.0.1") {
            let err = open_at(&with_tls(&url, "verify-full", Some(&server_cert)))
                .await
                .unwrap_err();
            assert!(matches!(err, ConnectError::Connect(_)), "{err:?}");
            let by_name = url.replacen("@127.0.0.1", "@localhost", 1);
            let store = open_at(&with_tls(&by_name, "verify-full", Some(&server_cert)))
                .await
                .expect("the certificate names localhost");
            close(store).await;
        }
    } else {
        eprintln!(
            "PostgreSQL TLS test: {server_cert} is not readable here; verify-ca success not checked"
        );
    }
}
