//! Strict parsing at the edge: control characters in any input, path tricks against a
//! webhook token's `allowed_paths`, and the modes of the files that hold secrets.

#[cfg(unix)]
mod file_modes {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use tokend::config::Database;

    use crate::helpers::{sensor, test_settings, Backend, Storage, TestApp};

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    }

    /// A server whose data directory (`<tmp>/data`) does not exist yet, or holds what
    /// `prepare` put there.
    async fn start(prepare: impl FnOnce(&Path)) -> (TestApp, std::path::PathBuf) {
        let storage = Storage::new(Backend::Sqlite);
        let data = storage.dir.path().join("data");
        prepare(&data);
        let mut settings = test_settings(&storage);
        settings.data_dir = data.clone();
        settings.database = Database::Sqlite {
            path: data.join("tokend.db"),
        };
        let app = TestApp::start(storage, settings).await;
        // A write, so that the write-ahead log exists.
        app.create_account(sensor("sensor:modes")).await;
        (app, data)
    }

    fn assert_private(data: &Path) {
        assert_eq!(mode(data), 0o700, "the data directory");
        for file in [
            "tokend.db",
            "tokend.db-wal",
            "tokend.db-shm",
            "signing-keys.kek",
        ] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
    }

    #[actix_web::test]
    async fn new_database_files_are_private() {
        let (_app, data) = start(|_| {}).await;
        assert_private(&data);
    }

    #[actix_web::test]
    async fn world_readable_database_files_are_tightened_at_start() {
        let (first, data) = start(|_| {}).await;
        for file in ["tokend.db", "tokend.db-wal", "signing-keys.kek"] {
            std::fs::set_permissions(data.join(file), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        // A second process on the same files (as after a restart) tightens them at start.
        let replica = first.replica().await;
        assert_private(&data);
        assert_eq!(replica.whoami(&replica.admin_token).await.0, 200);
    }
}
