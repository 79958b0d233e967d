//! Files that hold secrets stay private: their directory is created 0700 and the files 0600
//! (Unix), with a warning when an existing one was readable by others.

use std::path::Path;

/// Creates the directory that will hold a private file, if it does not exist: mode 0700 on
/// Unix. An existing directory that others may read is left as it is (it may be shared, like
/// `/tmp`), with a warning; the files tokend keeps in it are 0600 ([`keep_private`]).
pub fn ensure_parent_dir(file: &Path) -> std::io::Result<()> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => return Ok(()),
    };
    if dir.is_dir() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                log::warn!(
                    "the directory {} is open to other users (mode {mode:03o}); \
                     `chmod 700 {}` unless it is shared on purpose",
                    dir.display(),
                    dir.display()
                );
            }
        }
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Keeps a file that holds secrets (the SQLite database and its `-wal` and `-shm` files, the
/// key-encryption key) readable by its owner only, on Unix: with `create`, a missing file is
/// created empty with mode 0600; an existing one that others may read is set to 0600, with a
/// warning. A missing file without `create` is fine.
pub fn keep_private(path: &Path, create: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if create {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)?;
        }
        let mode = match std::fs::metadata(path) {
            Ok(meta) => meta.permissions().mode() & 0o777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if mode & 0o077 != 0 {
            log::warn!(
                "{} was open to other users (mode {mode:03o}); set it to 0600",
                path.display()
            );
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, create);
    Ok(())
}
