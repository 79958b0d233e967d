//! `/ui`: the dashboard's files come out of the binary, each with its type, caching and the
//! strict Content-Security-Policy; every one of them is loaded by the page or a script of it.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{code, Backend, TestApp};
use tokend::routes::ui::ASSETS;

async fn dashboard_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, headers, page) = app.send(Method::GET, "/ui", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    let mut texts = vec![page.as_str().unwrap().to_owned()];
    for asset in ASSETS {
        let (status, headers, body) = app.send(Method::GET, asset.pattern, None, None).await;
        assert_eq!(status, StatusCode::OK, "{}", asset.pattern);
        let want = if asset.pattern.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(headers["content-type"], want, "{}", asset.pattern);
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let cache = headers["cache-control"].to_str().unwrap();
        if asset.pattern.starts_with("/ui/vendor/") {
            assert_eq!(cache, "public, max-age=86400", "{}", asset.pattern);
        } else {
            assert_eq!(cache, "no-cache", "{}", asset.pattern);
        }
        texts.push(body.as_str().unwrap_or_default().to_owned());
    }
    // No dead files: the page or one of the scripts names each.
    for asset in ASSETS {
        let file = asset.pattern.rsplit('/').next().unwrap();
        assert!(
            texts.iter().any(|t| t.contains(&format!("/{file}\""))),
            "nothing loads {}",
            asset.pattern
        );
    }

    // Vendored files are cached for a day, so their version is in their path: a new uPlot
    // gets a new URL. The path must name the vendored version.
    let version =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/vendor/uplot/VERSION"))
            .unwrap();
    let version = version.split_whitespace().nth(1).unwrap().to_owned();
    for asset in tokend::routes::ui::ASSETS
        .iter()
        .filter(|a| a.pattern.contains("/vendor/"))
    {
        assert!(
            asset.pattern.contains(&format!("/uplot-{version}/")),
            "{} does not name uplot {version}",
            asset.pattern
        );
    }

    // The chart library is compressed on the way.
    let res = app
        .client
        .get(app.url("/ui/vendor/uplot-1.6.32/uPlot.iife.min.js"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert!(res.bytes().await.unwrap().len() < 30_000);

    // Anything else under /ui is the contract's JSON 404, and the files are GET only.
    let (status, _, body) = app.send(Method::GET, "/ui/nope.js", None, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{body}"
    );
    let (status, headers, body) = app
        .send(Method::POST, "/ui/app.js", None, Some(&Value::Null))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(headers["allow"], "GET");
}

crate::both_backends!(dashboard_files);
