//! `GET /metrics`: Prometheus text that a Prometheus parser reads, with the promised metrics.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, TestApp};

/// Scrapes `/metrics` and reads it by the Prometheus text format's rules (quoted label values
/// with escapes, `# TYPE` lines, `+Inf`); `name{k=v,...}` → value, histograms by `_count`.
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            if words.first() == Some(&"TYPE") {
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&words[2]),
                    "{line}"
                );
            }
            continue;
        }
        let (series, value) =
            parse_sample(line).unwrap_or_else(|| panic!("not a Prometheus sample: {line}"));
        let series = series.replace("_count{", "{");
        if !series.contains("_bucket{") && !series.contains("_sum{") {
            out.insert(series, value);
        }
    }
    out
}

/// `name{k="v",...} value` → (`name{k=v,...}` with sorted labels, value).
fn parse_sample(line: &str) -> Option<(String, f64)> {
    let name_end = line.find(['{', ' '])?;
    let (name, mut rest) = line.split_at(name_end);
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "{name}"
    );
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        loop {
            let (_, c) = chars.next()?;
            match c {
                '}' => break,
                ',' => continue,
                '=' => {
                    let (_, quote) = chars.next()?;
                    assert_eq!(quote, '"');
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '\\' => value.push(chars.next()?.1),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.push(format!("{}={value}", std::mem::take(&mut key)));
                }
                c => key.push(c),
            }
        }
        rest = &body[chars.next().map(|(i, _)| i)?..];
        rest = rest.trim_start_matches(' ');
    }
    let value = match rest.trim() {
        "+Inf" | "Inf" | "inf" => f64::INFINITY,
        "-Inf" | "-inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    labels.sort();
    Some((format!("{name}{{{}}}", labels.join(",")), value))
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

async fn prometheus_metrics(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = scrape(&app).await;
    let hook = app.create_account(json!({"name": "w", "scope": "webhook", "ttl_days": 100, "metadata": {"allowed_paths": ["/h"]}})).await;
    let sensor = app.create_account(crate::helpers::sensor("sensor:m")).await;
    let token = sensor["token"].as_str().unwrap();
    app.whoami(token).await;
    app.whoami("not-a-token").await;
    app.admin(
        Method::DELETE,
        &format!("/service-accounts/{}", sensor["identity_id"]),
        None,
    )
    .await;
    app.whoami(token).await;
    app.send(Method::POST, "/auth/refresh", hook["token"].as_str(), None)
        .await;
    app.admin(Method::POST, "/admin/cleanup", None).await;
    let after = scrape(&app).await;

    let grew = |key: &str, by: f64| {
        assert!(
            get(&after, key) >= get(&before, key) + by,
            "{key}: {} -> {}",
            get(&before, key),
            get(&after, key)
        );
    };
    grew("tokend_tokens_issued_total{scope=sensor}", 1.0);
    grew("tokend_tokens_issued_total{scope=webhook}", 1.0);
    grew("tokend_verifications_total{outcome=ok}", 1.0);
    grew("tokend_verifications_total{outcome=invalid}", 1.0);
    grew("tokend_verifications_total{outcome=revoked}", 1.0);
    grew("tokend_revocations_total{}", 1.0);
    grew("tokend_cleanup_runs_total{trigger=on_demand}", 1.0);
    grew(
        "tokend_http_request_duration_seconds{method=GET,route=/auth/whoami,status=200}",
        1.0,
    );
    grew("tokend_http_request_duration_seconds{method=DELETE,route=/service-accounts/{id},status=200}", 1.0);
    assert!(after.contains_key("tokend_revocation_set_size{}"));
    assert!(after.contains_key("tokend_revocation_rows{}"));
    let webhook_expiry = chrono::DateTime::parse_from_rfc3339(hook["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(
        get(
            &after,
            "tokend_earliest_expiry_timestamp_seconds{scope=webhook}"
        ),
        webhook_expiry as f64
    );
    assert_eq!(
        get(
            &after,
            "tokend_earliest_expiry_timestamp_seconds{scope=execution}"
        ),
        f64::INFINITY
    );
    // No token ever appears in the metrics.
    let text = app.metrics_text().await;
    assert!(!text.contains(&token[token.len() - 20..]));
}

crate::both_backends!(prometheus_metrics);

/// `promtool check metrics` (Prometheus's own linter) finds nothing: every family has HELP and
/// TYPE, counters end in `_total`, and the counters an alert rates over exist from the start.
#[actix_web::test]
async fn promtool_finds_nothing_to_lint() {
    let Some(promtool) = crate::deploy::promtool() else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let text = app.metrics_text().await;
    for family in [
        "tokend_tokens_issued_total{scope=\"webhook\"}",
        "tokend_logins_total{outcome=\"throttled\"}",
        "tokend_cleanup_runs_total{trigger=\"scheduled\"}",
        "tokend_refreshes_total",
        "tokend_oauth_token_requests_total{grant_type=\"client_credentials\",outcome=\"invalid_client\"}",
    ] {
        assert!(text.contains(family), "{family} is not exported before its first event");
    }
    // And after traffic of every kind (latency histograms appear with it).
    app.create_account(crate::helpers::sensor("sensor:lint"))
        .await;
    let _ = app
        .client
        .post(app.url("/oauth2/token"))
        .form(&[("grant_type", "x")])
        .send()
        .await;
    let text = app.metrics_text().await;
    let mut cmd = std::process::Command::new(promtool);
    cmd.args(["check", "metrics"]);
    let out = crate::helpers::run_with_stdin(cmd, text).await;
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "promtool check metrics:\n{findings}"
    );
}
