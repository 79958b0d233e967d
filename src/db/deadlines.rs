//! Deadlines on every PostgreSQL connection, so that a database that is gone, or a network
//! path that froze, is noticed within seconds instead of never.
//!
//! Added to the connection URL when it does not set them itself (anything the URL sets wins,
//! so every value can be overridden there):
//!
//! | libpq parameter | default | what it bounds |
//! |---|---|---|
//! | `connect_timeout` | 3 s | opening a connection |
//! | `keepalives`, `keepalives_idle`, `keepalives_interval`, `keepalives_count` | on, 5 s, 1 s, 3 | an idle connection whose peer vanished |
//! | `tcp_user_timeout` | 5000 ms | a query sent into a frozen path (unacknowledged data) |
//!
//! and, after connecting, `SET statement_timeout = '5s'` unless the URL mentions
//! `statement_timeout` (e.g. `options=-c%20statement_timeout%3D30s`). It is a `SET` and not
//! the `options` startup parameter because PgBouncer refuses unknown startup parameters.
//! Migrations lift the statement timeout for their own transaction.

/// The statement timeout applied to every connection (see the module docs).
pub const STATEMENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
pub const STATEMENT_TIMEOUT_SQL: &str = "SET statement_timeout = '5s'";

/// The longest a request waits for the database before 503 `storage_unavailable`: the pool
/// checkout (`TOKEND_DB_POOL_TIMEOUT`) and one statement timeout.
pub fn request_deadline(settings: &crate::config::Settings) -> std::time::Duration {
    settings.db_pool_timeout + STATEMENT_TIMEOUT
}

/// Parameters added to a URL that lacks them.
const DEFAULTS: &[(&str, &str)] = &[
    ("connect_timeout", "3"),
    ("keepalives", "1"),
    ("keepalives_idle", "5"),
    ("keepalives_interval", "1"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "5000"),
];

/// `url` with the default deadlines for every parameter it does not set.
pub fn with_deadlines(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let present: Vec<&str> = query
        .split('&')
        .filter_map(|pair| pair.split('=').next())
        .collect();
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    for (key, value) in DEFAULTS {
        if !present.contains(key) {
            params.push(format!("{key}={value}"));
        }
    }
    format!("{base}?{}", params.join("&"))
}

/// Whether the URL sets its own statement timeout (then tokend does not).
pub fn sets_statement_timeout(url: &str) -> bool {
    url.contains("statement_timeout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_what_the_url_leaves_out() {
        let url = with_deadlines("postgres://u@a:5432,b:5433/db");
        assert!(url.starts_with("postgres://u@a:5432,b:5433/db?connect_timeout=3&"));
        assert!(url.contains("tcp_user_timeout=5000"));
        let own =
            with_deadlines("postgres://u@h/db?target_session_attrs=read-write&connect_timeout=10");
        assert!(own.contains("target_session_attrs=read-write"));
        assert!(own.contains("connect_timeout=10"));
        assert!(!own.contains("connect_timeout=3"));
        assert!(sets_statement_timeout(
            "postgres://h/db?options=-c%20statement_timeout%3D30s"
        ));
    }
}
