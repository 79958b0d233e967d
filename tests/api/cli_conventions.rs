//! Command-line conventions: completions and a man page generated from the clap definitions,
//! `--output json` beside an aligned table, progress only on a terminal, and `tokend health`
//! (the image's HEALTHCHECK).

use std::process::{Command, Stdio};

use crate::helpers::{run_command, Backend, Storage, TestApp};

fn tokend(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokend"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .args(args);
    cmd
}

fn stdout_of(args: &[&str]) -> String {
    let out = tokend(args).output().unwrap();
    assert!(
        out.status.success(),
        "tokend {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Each shell's script parses in that shell (where the shell is installed; bash always is)
/// and completes the subcommands.
#[test]
fn completions_parse_in_their_shells() {
    for (shell, check) in [
        ("bash", &["bash", "-n"][..]),
        ("zsh", &["zsh", "-n"][..]),
        ("fish", &["fish", "--no-execute"][..]),
    ] {
        let script = stdout_of(&["completions", shell]);
        assert!(
            script.contains("tokend") && script.contains("admin-token"),
            "{shell}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokend.completion");
        std::fs::write(&file, &script).unwrap();
        match Command::new(check[0]).args(&check[1..]).arg(&file).output() {
            Ok(out) => assert!(
                out.status.success(),
                "{shell} rejects its completion script: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(_) if shell != "bash" => eprintln!("{shell} is not installed: script not parsed"),
            Err(e) => panic!("bash: {e}"),
        }
    }
    let out = tokend(&["completions", "tcsh"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

/// The man page renders without a single groff warning and documents every subcommand.
#[test]
fn man_page_renders_cleanly() {
    let page = stdout_of(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH tokend 1"),
        "{page:.200}"
    );
    for section in [
        "TOKEND SERVE",
        "TOKEND SA LIST",
        "TOKEND COMPLETIONS",
        "TOKEND HEALTH",
    ] {
        assert!(
            page.contains(&format!(".SH \"{section}\"")),
            "no {section} section"
        );
    }
    if !crate::helpers::require_tools(&["groff"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokend.1");
    std::fs::write(&file, &page).unwrap();
    let out = Command::new("groff")
        .args(["-man", "-ww", "-z", "-K", "utf8"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warnings");
}

/// `sa list` is an aligned table by default and JSON with `--output json` (or `-o json`);
/// `--json` still works.
async fn list_output_formats(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let long_name = "sensor:a.rather.long.trigger.name.that.overflows.columns";
    let (status, _, stderr) = run_command(app.cli([
        "sa",
        "create",
        "--name",
        long_name,
        "--scope",
        "sensor",
        "--trigger-type",
        "core.timer",
    ]))
    .await;
    assert_eq!(status, 0, "{stderr}");

    let (status, table, _) = run_command(app.cli(["sa", "list"])).await;
    assert_eq!(status, 0);
    let lines: Vec<&str> = table.lines().collect();
    let header = lines[0];
    let scope_column = header.find("SCOPE").unwrap();
    let row = lines.iter().find(|l| l.contains(long_name)).unwrap();
    assert!(
        row[scope_column..].starts_with("sensor "),
        "SCOPE column misaligned:\n{table}"
    );
    assert!(lines.last().unwrap().ends_with("account(s)"));

    for flags in [
        &["--output", "json"][..],
        &["-o", "json"][..],
        &["--json"][..],
    ] {
        let mut args = vec!["sa", "list"];
        args.extend_from_slice(flags);
        let (status, out, stderr) = run_command(app.cli(&args)).await;
        assert_eq!(status, 0, "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
        assert!(v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == long_name));
        assert_eq!(
            v["total"].as_u64(),
            Some(v["data"].as_array().unwrap().len() as u64)
        );
    }
    let (status, _, stderr) = run_command(app.cli(["sa", "list", "--output", "yaml"])).await;
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.contains("text") && stderr.contains("json"),
        "{stderr}"
    );
}

/// Piped (as under cron or in a script), `migrate` and `cleanup` print their result and no
/// progress; on a terminal (a pty from `script`) `migrate` draws its bar.
#[test]
fn progress_only_on_a_terminal() {
    let storage = Storage::new(Backend::Sqlite);
    let run = |args: &[&str]| {
        tokend(args)
            .env("TOKEND_DATA_DIR", storage.data_dir())
            .output()
            .unwrap()
    };
    let out = run(&["migrate"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A drawn bar or spinner: its name, a carriage return, or an ANSI escape.
    let drawn = |s: &str| {
        s.contains("migrating") || s.contains("cleanup:") || s.contains('\r') || s.contains('\x1b')
    };
    assert!(!drawn(&stderr), "progress on a pipe: {stderr}");
    assert!(stderr.contains("migrations applied"), "{stderr}");
    let out = run(&["cleanup"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!drawn(&stderr), "progress on a pipe: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["deleted_revocations"].is_u64());

    if !crate::helpers::require_tools(&["script"]) {
        return;
    }
    let fresh = Storage::new(Backend::Sqlite);
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{} migrate", env!("CARGO_BIN_EXE_tokend")),
            "/dev/null",
        ])
        .env("TOKEND_DATA_DIR", fresh.data_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("migrating ["),
        "no progress bar on a terminal: {shown:?}"
    );
}

/// `tokend health`: 0 with a ready server (a wildcard TOKEND_LISTEN is asked on loopback),
/// 1 (Docker's "unhealthy"; it reserves 2) with a clear message when nothing listens.
#[actix_web::test]
async fn health_command() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let (status, out, stderr) = run_command({
        let mut c = tokend(&["health"]);
        c.env("TOKEND_LISTEN", format!("0.0.0.0:{port}"));
        c
    })
    .await;
    assert_eq!(status, 0, "{stderr}");
    assert!(out.contains("ready"), "{out}");
    let (status, _, stderr) =
        run_command(tokend(&["health", "--url", "http://127.0.0.1:9/ready"])).await;
    assert_eq!(status, 1);
    assert!(stderr.contains("127.0.0.1:9"), "{stderr}");
}

crate::both_backends!(list_output_formats);

/// Under TLS the probe speaks HTTPS to loopback: the image's HEALTHCHECK works unchanged when
/// TOKEND_TLS_CERT is set.
#[actix_web::test]
async fn health_command_under_tls() {
    let ca = crate::tls_ca::TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let tls = ca.server_tls(dir.path());
    let cert = tls.cert.clone();
    let app = TestApp::spawn_tls(Backend::Sqlite, tls, &ca).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let mut cmd = tokend(&["health"]);
    cmd.env("TOKEND_LISTEN", format!("0.0.0.0:{port}"))
        .env("TOKEND_TLS_CERT", cert);
    let (status, out, stderr) = run_command(cmd).await;
    assert_eq!(status, 0, "{stderr}");
    assert!(out.contains("https://127.0.0.1:"), "{out}");
}
