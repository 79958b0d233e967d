//! A PostgreSQL primary with a synchronous streaming standby, started by the test itself
//! from the server binaries (`TOKEND_TEST_PG_BIN`, default Debian's
//! `/usr/lib/postgresql/15/bin`): a temp dir, two free ports, 127.0.0.1 only.
//!
//! ```ignore
//! let Some(cluster) = PgCluster::start() else { return };   // prints "skipped" when it can't
//! let url = cluster.url("tokend");   // both hosts, target_session_attrs=read-write
//! cluster.stop_primary();            // pg_ctl -m immediate stop: a crash
//! cluster.promote_standby();         // pg_ctl promote
//! ```
//!
//! Both servers are stopped (`-m immediate`) and the directory removed on drop, panics
//! included. Every call blocks: from async code, run them under `web::block`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::pg_url;

/// The standby's `application_name`, which the primary's `synchronous_standby_names` names.
const STANDBY_NAME: &str = "standby";

/// One server of the cluster.
pub struct PgNode {
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
}

impl PgNode {
    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub struct PgCluster {
    bin: PathBuf,
    /// Running the servers as the `postgres` OS user (we are root, which they refuse).
    as_postgres: bool,
    pub primary: PgNode,
    pub standby: PgNode,
    // Last: removed after the servers are stopped.
    _dir: tempfile::TempDir,
}

impl PgCluster {
    /// Starts the primary, then the standby from a base backup of it, and waits until the
    /// primary reports it as its synchronous standby. `None` (with "skipped") without
    /// `TOKEND_TEST_PG_URL`, or without the binaries outside CI.
    pub fn start() -> Option<PgCluster> {
        if pg_url().is_none() {
            eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
            return None;
        }
        let bin = PathBuf::from(
            std::env::var("TOKEND_TEST_PG_BIN")
                .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
        );
        if !bin.join("pg_basebackup").is_file() {
            assert!(
                std::env::var("CI").is_err(),
                "CI must have the PostgreSQL server binaries in {}",
                bin.display()
            );
            eprintln!(
                "skipped: no PostgreSQL server binaries in {}",
                bin.display()
            );
            return None;
        }
        let as_postgres = is_root();
        let dir = tempfile::tempdir().expect("temp dir");
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let node = |name: &str| PgNode {
            port: free_port(),
            data: dir.path().join(name),
            log: dir.path().join(format!("{name}.log")),
        };
        let cluster = PgCluster {
            bin,
            as_postgres,
            primary: node("primary"),
            standby: node(STANDBY_NAME),
            _dir: dir,
        };
        cluster.init_primary();
        cluster.start_node(&cluster.primary);
        cluster.clone_standby();
        cluster.start_node(&cluster.standby);
        cluster.wait_for_sync_standby();
        Some(cluster)
    }

    /// A URL to database `db` that names both servers and wants the writable one: what
    /// tokend is given.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{db}?target_session_attrs=read-write",
            self.primary.port, self.standby.port
        )
    }

    /// Stops the primary the way a crash does (`pg_ctl -m immediate stop`): no checkpoint,
    /// connections cut.
    pub fn stop_primary(&self) {
        self.stop(&self.primary);
    }

    /// Promotes the standby (`pg_ctl promote`, waiting until it accepts writes).
    pub fn promote_standby(&self) {
        run(self
            .tool("pg_ctl")
            .args(["promote", "-w", "-t", "60", "-D"])
            .arg(&self.standby.data));
    }

    /// SQL on a server's `postgres` database through `psql`: the rows, unaligned, one a line.
    pub fn query(&self, node: &PgNode, sql: &str) -> String {
        self.query_in(node, "postgres", sql)
    }

    /// SQL on database `db` of a server, as [`PgCluster::query`].
    pub fn query_in(&self, node: &PgNode, db: &str, sql: &str) -> String {
        run(self.tool("psql").args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &node.port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ]))
        .trim()
        .to_owned()
    }

    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        };
        // The servers are ours alone: no connection settings of the caller leak in.
        for var in [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGSERVICE",
            "PGOPTIONS",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn init_primary(&self) {
        let data = &self.primary.data;
        run(self
            .tool("initdb")
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(data));
        append(
            &data.join("postgresql.conf"),
            &format!(
                "\n# pg_cluster.rs\n\
                 listen_addresses = '127.0.0.1'\n\
                 port = {port}\n\
                 unix_socket_directories = ''\n\
                 max_connections = 60\n\
                 shared_buffers = '32MB'\n\
                 wal_level = replica\n\
                 max_wal_senders = 4\n\
                 max_replication_slots = 4\n\
                 hot_standby = on\n\
                 # A commit is acknowledged once the standby has flushed it too.\n\
                 synchronous_commit = on\n\
                 synchronous_standby_names = '{STANDBY_NAME}'\n",
                port = self.primary.port
            ),
        );
        append(
            &data.join("pg_hba.conf"),
            "\n# pg_cluster.rs: the standby streams from the primary\n\
             host replication postgres 127.0.0.1/32 trust\n",
        );
    }

    fn clone_standby(&self) {
        run(self
            .tool("pg_basebackup")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.primary.port.to_string())
            // -R: standby.signal and primary_conninfo; a slot so the primary keeps its WAL.
            .args([
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
                "-C",
                "-S",
                "standby",
            ])
            .arg("-D")
            .arg(&self.standby.data));
        append(
            &self.standby.data.join("postgresql.conf"),
            &format!(
                "\n# pg_cluster.rs: the standby\n\
                 port = {port}\n\
                 # Its walreceiver's application_name, which the primary waits for.\n\
                 cluster_name = '{STANDBY_NAME}'\n\
                 # Once promoted it stands alone: waiting for a standby of its own would block\n\
                 # every commit.\n\
                 synchronous_standby_names = ''\n",
                port = self.standby.port
            ),
        );
    }

    fn start_node(&self, node: &PgNode) {
        let started = self
            .tool("pg_ctl")
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&node.data)
            .arg("-l")
            .arg(&node.log)
            .output()
            .expect("pg_ctl runs");
        assert!(
            started.status.success(),
            "pg_ctl start {}: {}\n{}",
            node.data.display(),
            String::from_utf8_lossy(&started.stderr),
            node.log()
        );
    }

    fn wait_for_sync_standby(&self) {
        let start = Instant::now();
        let sql = format!(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"
        );
        while self.query(&self.primary, &sql) != "sync" {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the standby did not become synchronous:\n{}",
                self.standby.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&self, node: &PgNode) {
        if node.data.join("postmaster.pid").exists() {
            let _ = self
                .tool("pg_ctl")
                .args(["stop", "-m", "immediate", "-w", "-t", "30", "-D"])
                .arg(&node.data)
                .output();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop(&self.standby);
        self.stop(&self.primary);
    }
}

/// Runs a command that must succeed; its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} cannot run: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

// The cluster itself.

#[test]
fn the_standby_is_synchronous_and_takes_over_when_promoted() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    cluster.query(
        &cluster.primary,
        "CREATE TABLE t (v int); INSERT INTO t VALUES (1)",
    );
    // Synchronous (remote flush), not yet applied: wait for the replay, bounded.
    let start = Instant::now();
    while cluster.query(&cluster.standby, "SELECT count(*) FROM t") != "1" {
        assert!(start.elapsed() < Duration::from_secs(10), "not replayed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        cluster.query(&cluster.standby, "SELECT pg_is_in_recovery()"),
        "t"
    );
    cluster.stop_primary();
    cluster.promote_standby();
    assert_eq!(
        cluster.query(&cluster.standby, "SELECT pg_is_in_recovery()"),
        "f"
    );
    assert_eq!(
        cluster.query(
            &cluster.standby,
            "INSERT INTO t VALUES (2); SELECT count(*) FROM t"
        ),
        "2"
    );
}
