//! The deploy files are checked, not decorative: the Prometheus alert rules pass
//! `promtool check rules` and their unit tests (`promtool test rules`), and every metric the
//! rules and the Grafana dashboard use is one tokend exports; the systemd units pass
//! `systemd-analyze verify`, the Kubernetes manifests `kubernetes-validate --strict`, and
//! docker-compose.yml the Compose Specification's schema and `podman-compose config`.
//! (The image itself is built and run by scripts/image-test.sh, a stage of .ci/run.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::helpers::{Backend, TestApp};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// `found`, or (outside CI only) `None` with a "skipped" note: in CI a missing tool fails.
fn required(found: Option<PathBuf>, name: &str, install: &str) -> Option<PathBuf> {
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing: {install} (.ci/run installs it)"
        );
        eprintln!("skipped: {name} is not installed ({install})");
    }
    found
}

/// Prometheus's `promtool` (Debian's prometheus package); `None` (skipped) outside CI.
pub(crate) fn promtool() -> Option<PathBuf> {
    let found = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    required(found, "promtool", "apt-get install prometheus")
}

#[actix_web::test]
async fn alert_rules_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = promtool() else {
        return;
    };
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts.test.yml"],
    ] {
        let mut cmd = std::process::Command::new(&promtool);
        cmd.args(&args).current_dir(deploy("prometheus"));
        let (status, stdout, stderr) = crate::helpers::run_command(cmd).await;
        assert_eq!(status, 0, "promtool {args:?}:\n{stdout}{stderr}");
    }
}

/// The `tokend_*` metric names an expression text mentions, histogram suffixes taken off.
fn metric_names(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"tokend_[a-z_]+").unwrap();
    re.find_iter(text)
        .map(|m| {
            let name = m.as_str();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name)
                .to_owned()
        })
        .collect()
}

#[actix_web::test]
async fn the_rules_and_the_dashboard_use_only_exported_metrics() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // Traffic that makes the histograms appear as well.
    app.create_account(crate::helpers::sensor("sensor:deploy"))
        .await;
    let exported = app.metrics_text().await;
    let exported = metric_names(&exported);
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(deploy("grafana/tokend.json")).unwrap();
    let parsed: serde_json::Value =
        serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
    // TLS metrics exist only on a server with TLS; cleanup's histogram after its first run.
    let conditional = [
        "tokend_tls_certificate_expiry_timestamp_seconds",
        "tokend_cleanup_duration_seconds",
    ];
    for (file, text) in [("alerts.yml", &rules), ("tokend.json", &dashboard)] {
        let used = metric_names(text);
        assert!(!used.is_empty(), "{file} uses no tokend metric");
        for name in used {
            assert!(
                exported.contains(&name) || conditional.contains(&name.as_str()),
                "{file} uses {name}, which tokend does not export"
            );
        }
    }
}

/// The systemd units pass `systemd-analyze verify` (which warns, and still exits 0, for an
/// unknown key: any warning about them fails the test). `ExecStart` points at the binary
/// this build made, since verify insists it exists.
#[actix_web::test]
async fn systemd_units_verify() {
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing"
        );
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_tokend");
    let mut units = Vec::new();
    for (file, instance) in [
        ("tokend.service", "tokend.service"),
        ("tokend-agent@.service", "tokend-agent@core.timer.service"),
    ] {
        let text = std::fs::read_to_string(deploy(&format!("systemd/{file}"))).unwrap();
        assert!(text.contains("ExecStart=/usr/local/bin/tokend "), "{file}");
        let path = dir.path().join(instance);
        std::fs::write(&path, text.replace("/usr/local/bin/tokend", bin)).unwrap();
        units.push(path);
    }
    let mut cmd = std::process::Command::new(analyze);
    cmd.arg("verify").args(&units);
    let (status, stdout, stderr) = crate::helpers::run_command(cmd).await;
    let about_ours: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| l.contains(dir.path().to_str().unwrap()) || l.contains("tokend"))
        .collect();
    assert!(
        status == 0 && about_ours.is_empty(),
        "systemd-analyze verify (exit {status}):\n{}",
        about_ours.join("\n")
    );
}

/// The Kubernetes manifests validate against the Kubernetes schemas, strictly (an unknown
/// field fails), with the `kubernetes-validate` of .ci/run's tools venv; the kustomization
/// lists exactly the manifests there are.
#[actix_web::test]
async fn kubernetes_manifests_validate() {
    let Some(validate) = venv_tool("kubernetes-validate") else {
        return;
    };
    let dir = deploy("kubernetes");
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    let listed: BTreeSet<String> = kustomization
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter(|f| f.ends_with(".yaml"))
        .map(str::to_owned)
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed, present,
        "kustomization.yaml lists exactly the manifests"
    );
    let text: String = present
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
        .collect();
    for kind in [
        "kind: Deployment",
        "kind: Service",
        "kind: Secret",
        "kind: PodDisruptionBudget",
        "path: /ready",
    ] {
        assert!(text.contains(kind), "the manifests have no {kind}");
    }
    let mut cmd = std::process::Command::new(validate);
    cmd.arg("--strict")
        .arg("--quiet")
        .args(&present)
        .current_dir(&dir);
    let (status, stdout, stderr) = crate::helpers::run_command(cmd).await;
    assert_eq!(status, 0, "kubernetes-validate:\n{stdout}{stderr}");
}

/// The tools venv's `bin/NAME`, installed by .ci/run; `None` (skipped) outside CI.
fn venv_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("TOKEND_TEST_PYTHON")
        .map(PathBuf::from)
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file());
    required(found, name, "pip install it into TOKEND_TEST_PYTHON's venv")
}

/// docker-compose.yml: valid against the Compose Specification's JSON schema (an unknown key
/// or a wrong type fails), resolved by `podman-compose config`, and wired the way tokend
/// needs: the database URL names the postgres service with its credentials, tokend waits for
/// it to be healthy, listens on every interface on the published port, and keeps its data in
/// the image's volume.
#[actix_web::test]
async fn compose_file_validates() {
    let (Some(schema_check), Some(compose)) =
        (venv_tool("check-jsonschema"), venv_tool("podman-compose"))
    else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = std::process::Command::new(schema_check);
    cmd.args([
        "--builtin-schema",
        "vendor.compose-spec",
        "docker-compose.yml",
    ])
    .current_dir(root);
    let (status, stdout, stderr) = crate::helpers::run_command(cmd).await;
    assert_eq!(status, 0, "compose-spec schema:\n{stdout}{stderr}");

    let mut cmd = std::process::Command::new(&compose);
    cmd.args(["-f", "docker-compose.yml", "config"])
        .current_dir(root);
    let (status, resolved, stderr) = crate::helpers::run_command(cmd).await;
    assert_eq!(status, 0, "podman-compose config:\n{resolved}{stderr}");
    // podman-compose's own Python has PyYAML: the resolved file as JSON.
    let python = compose.with_file_name("python");
    let mut cmd = std::process::Command::new(python);
    cmd.args([
        "-c",
        "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        "/dev/stdin",
    ]);
    let out = crate::helpers::run_with_stdin(cmd, resolved).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let pg = &config["services"]["postgres"];
    let tokend = &config["services"]["tokend"];
    let env = |k: &str| {
        tokend["environment"][k]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let pg_env = |k: &str| pg["environment"][k].as_str().unwrap().to_owned();
    assert_eq!(
        env("TOKEND_DATABASE_URL"),
        format!(
            "postgres://{}:{}@postgres:5432/{}",
            pg_env("POSTGRES_USER"),
            pg_env("POSTGRES_PASSWORD"),
            pg_env("POSTGRES_DB")
        )
    );
    assert_eq!(
        tokend["depends_on"]["postgres"]["condition"], "service_healthy",
        "tokend starts once PostgreSQL is healthy"
    );
    assert!(pg["healthcheck"]["test"].is_array());
    assert!(
        tokend["build"]["context"].is_string(),
        "tokend is built from the Dockerfile"
    );

    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let listen = Some(env("TOKEND_LISTEN"))
        .filter(|l| !l.is_empty())
        .or_else(|| {
            dockerfile
                .split_once("TOKEND_LISTEN=")
                .map(|(_, rest)| rest.split_whitespace().next().unwrap().to_owned())
        })
        .unwrap();
    let (host, port) = listen.rsplit_once(':').unwrap();
    assert_eq!(
        host, "0.0.0.0",
        "inside a container tokend must listen on every interface"
    );
    let ports: Vec<&str> = tokend["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(
        ports.iter().any(|p| p.ends_with(&format!(":{port}"))),
        "the published port {ports:?} reaches the listen port {port}"
    );
    let volume = dockerfile
        .split_once("VOLUME [\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(path, _)| path.to_owned())
        .unwrap();
    assert!(
        tokend["volumes"].as_array().unwrap().iter().any(|v| v
            .as_str()
            .is_some_and(|v| v.ends_with(&format!(":{volume}")))),
        "the data volume is mounted at the image's VOLUME {volume}"
    );
}
