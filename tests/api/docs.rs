//! The docs, checked: every shell snippet of README.md and docs/*.md runs against a live
//! server, and every relative link in those pages points at a file (and heading) that exists.
//!
//! A page's ```` ```sh ```` / ```` ```bash ```` blocks run in order, in one `bash` with
//! `set -euo pipefail`, so later blocks see what earlier ones made. The directory they run in
//! is fresh, with `./data` linking to the server's data directory (so `tokend admin-token`
//! works as the README says), `tokend` on the `PATH`, `TOKEND_URL` and `ADMIN_TOKEN` set,
//! and `http://127.0.0.1:8080` replaced by the server's address. A block that cannot run
//! here is marked on the line before it: `<!-- no-run: why -->`, or `<!-- needs: tool … -->`
//! (runs when the tools are installed). `TOKEND_TEST_DOCS_OUTPUT=1` shows what each page printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{Backend, TestApp};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// How long one page's snippets may take together.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// README.md and every docs/*.md, as paths relative to the repository.
fn pages() -> Vec<String> {
    let mut pages: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    pages.sort();
    pages.insert(0, "README.md".into());
    pages
}

fn read(page: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(page)).unwrap_or_else(|e| panic!("{page}: {e}"))
}

/// What the line before a block says about running it.
#[derive(Debug, PartialEq)]
enum Marker {
    Run,
    NoRun(String),
    Needs(Vec<String>),
}

/// One fenced shell block: the line its fence opens on, its text, its marker.
struct Block {
    line: usize,
    text: String,
    marker: Marker,
}

/// Whether `line` opens or closes a fence (at most three spaces of indentation, as in
/// CommonMark; deeper is an indented code block's text).
fn fence(line: &str) -> Option<&str> {
    let trimmed = line.trim_start_matches(' ');
    (line.len() - trimmed.len() < 4)
        .then(|| trimmed.strip_prefix("```"))
        .flatten()
}

fn marker(page: &str, line: usize, before: &str) -> Marker {
    let Some(comment) = before
        .trim()
        .strip_prefix("<!--")
        .and_then(|c| c.strip_suffix("-->"))
    else {
        return Marker::Run;
    };
    let comment = comment.trim();
    if let Some(reason) = comment.strip_prefix("no-run:") {
        assert!(
            !reason.trim().is_empty(),
            "{page}:{line}: say why the block cannot run"
        );
        Marker::NoRun(reason.trim().to_owned())
    } else if let Some(tools) = comment.strip_prefix("needs:") {
        let tools: Vec<String> = tools.split_whitespace().map(str::to_owned).collect();
        assert!(!tools.is_empty(), "{page}:{line}: needs which tools?");
        Marker::Needs(tools)
    } else {
        Marker::Run
    }
}

/// The page's fenced `sh` and `bash` blocks, in order.
fn shell_blocks(page: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = fence(lines[i]) else {
            i += 1;
            continue;
        };
        let open = i;
        i += 1;
        let start = i;
        while i < lines.len() && fence(lines[i]).is_none() {
            i += 1;
        }
        assert!(i < lines.len(), "{page}:{}: the block never ends", open + 1);
        let lang = info.split_whitespace().next().unwrap_or("");
        if lang == "sh" || lang == "bash" {
            let before = if open > 0 { lines[open - 1] } else { "" };
            blocks.push(Block {
                line: open + 1,
                text: lines[start..i].join("\n"),
                marker: marker(page, open + 1, before),
            });
        }
        i += 1;
    }
    blocks
}

fn installed(tool: &str) -> bool {
    Command::new("bash")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What running one page's snippets came to.
#[derive(Default)]
struct Tally {
    ran: usize,
    skipped: Vec<String>,
}

/// Runs a page's runnable blocks in one bash; panics with the output if it fails.
fn run_page(page: &str, blocks: &[Block], app: &RunEnv, tally: &mut Tally) -> String {
    let mut script = String::from("set -euo pipefail\n");
    for block in blocks {
        match &block.marker {
            Marker::NoRun(why) => {
                tally
                    .skipped
                    .push(format!("{page}:{} (no-run: {why})", block.line));
                continue;
            }
            Marker::Needs(tools) if !tools.iter().all(|t| installed(t)) => {
                // CI installs every tool a page needs (.ci/run): there a skip is a failure.
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{page}:{}: CI must have {tools:?}",
                    block.line
                );
                tally
                    .skipped
                    .push(format!("{page}:{} (needs {})", block.line, tools.join(" ")));
                continue;
            }
            _ => {}
        }
        tally.ran += 1;
        script.push_str(&format!(
            "echo '--- {page}:{}' >&2\n{}\n",
            block.line,
            block.text.replace("http://127.0.0.1:8080", &app.url)
        ));
    }
    if script.lines().count() == 1 {
        return String::new();
    }
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&app.data_dir, work.path().join("data")).unwrap();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env_clear()
        .env("PATH", &app.path)
        .env("HOME", work.path())
        .env("LANG", "C.UTF-8")
        .env("TOKEND_URL", &app.url)
        .env("ADMIN_TOKEN", &app.admin_token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > PAGE_TIMEOUT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "{page}: a snippet failed ({}; the last `--- page:line` names its block)\n\
         stdout:\n{stdout}\nstderr:\n{stderr}",
        if started.elapsed() > PAGE_TIMEOUT {
            "timed out".to_owned()
        } else {
            out.status.to_string()
        }
    );
    if std::env::var_os("TOKEND_TEST_DOCS_OUTPUT").is_some() {
        eprintln!("=== {page}\n{stdout}\n{stderr}");
    }
    stdout.into_owned()
}

/// What the snippets get: the server, the data directory, a PATH with `tokend` first.
struct RunEnv {
    url: String,
    admin_token: String,
    data_dir: PathBuf,
    path: String,
}

#[actix_web::test]
async fn every_shell_snippet_in_the_docs_runs() {
    if !crate::helpers::require_tools(&["curl", "jq", "bash"]) {
        return;
    }
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tokend"), bin.path().join("tokend")).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut tally = Tally::default();
    let mut pages_run = 0;
    for page in pages() {
        let blocks = shell_blocks(&page, &read(&page));
        if blocks.is_empty() {
            continue;
        }
        // Each page gets a server of its own: pages are read one at a time.
        let app = TestApp::spawn(Backend::Sqlite).await;
        let env = RunEnv {
            url: app.address.clone(),
            admin_token: app.admin_token.clone(),
            data_dir: app.storage.data_dir(),
            path: path.clone(),
        };
        let (page, stdout, t) = actix_web::web::block(move || {
            let stdout = run_page(&page, &blocks, &env, &mut tally);
            (page, stdout, tally)
        })
        .await
        .unwrap();
        tally = t;
        pages_run += 1;
        // curl does not fail on an error answer; an error body in the output is a failure.
        for error in ["\"error\":", "\"error\" :"] {
            assert!(
                !stdout.contains(error),
                "{page}: an error answer:\n{stdout}"
            );
        }
        if page == "README.md" {
            assert!(stdout.contains("token_revoked"), "README.md: {stdout}");
        }
    }
    eprintln!(
        "docs: {} shell snippets ran on {pages_run} pages, {} skipped:\n  {}",
        tally.ran,
        tally.skipped.len(),
        tally.skipped.join("\n  ")
    );
    assert!(tally.ran > 0, "no snippet ran");
}

/// GitHub's anchor for a heading: lower case, spaces to hyphens, punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect::<String>()
        .to_lowercase()
}

/// The anchors of a page's headings (outside code blocks), duplicates numbered as GitHub does.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if fence(line).is_some() {
            in_fence = !in_fence;
            continue;
        }
        let Some(heading) = (!in_fence && line.starts_with('#'))
            .then(|| line.trim_start_matches('#'))
            .and_then(|h| h.strip_prefix(' '))
        else {
            continue;
        };
        let base = slug(heading);
        let n = seen.entry(base.clone()).or_insert(0);
        out.push(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// The `](target)` links of a page, outside code blocks, with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (n, line) in text.lines().enumerate() {
        if fence(line).is_some() {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            out.push((n + 1, rest[..end].to_owned()));
            rest = &rest[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = Path::new(ROOT);
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = read(&page);
        let dir = Path::new(&page).parent().unwrap().to_path_buf();
        for (line, target) in links(&text) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            checked += 1;
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let rel = if file.is_empty() {
                PathBuf::from(&page)
            } else {
                normalize(&dir.join(file))
            };
            let rel_str = rel.to_string_lossy().into_owned();
            if !root.join(&rel).exists() {
                broken.push(format!("{page}:{line}: {target}: no file {rel_str}"));
                continue;
            }
            if let Some(anchor) = anchor.filter(|_| rel_str.ends_with(".md")) {
                if !anchors(&read(&rel_str)).iter().any(|a| a == anchor) {
                    broken.push(format!(
                        "{page}:{line}: {target}: no heading #{anchor} in {rel_str}"
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked > 0, "no relative link checked");
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                assert!(out.pop(), "{} leaves the repository", path.display());
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn the_snippet_markers_are_read_as_documented() {
    let page = "<!-- no-run: needs a cluster -->\n```sh\nkubectl apply\n```\n\
                text\n```sh\necho hi\n```\n<!-- needs: sqlite3 -->\n```bash\nsqlite3\n```\n\
                ```json\n{}\n```\n    ```sh\n    an indented code block, not a fence\n";
    let blocks = shell_blocks("test.md", page);
    let markers: Vec<&Marker> = blocks.iter().map(|b| &b.marker).collect();
    assert_eq!(
        markers,
        [
            &Marker::NoRun("needs a cluster".into()),
            &Marker::Run,
            &Marker::Needs(vec!["sqlite3".into()]),
        ]
    );
    assert_eq!(blocks[1].text, "echo hi");
    assert_eq!(
        slug("A five-minute walk-through: create → use"),
        "a-five-minute-walk-through-create--use"
    );
    assert_eq!(
        slug("`tokend agent`: sensors renew themselves"),
        "tokend-agent-sensors-renew-themselves"
    );
}
