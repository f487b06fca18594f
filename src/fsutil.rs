//! Files written so that nothing already written is ever lost: whole-or-nothing replacement
//! (a temporary file next to the target, synced, then renamed over it) and CSV files opened
//! for appending under a checked header. The one place for both; every writer uses these.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file operation that failed, naming the file. The I/O error is part of the message, not a
/// `source`: an error chain (`{:#}`) would print it a second time.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{}: cannot {what}: {cause}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        cause: std::io::Error,
    },
    #[error("{}: the path has no file name", .0.display())]
    NoFileName(PathBuf),
    #[error(
        "{}:1: the header is `{found}`, expected `{expected}` (a file from another version?); move it away or use another --output-dir",
        path.display()
    )]
    Header {
        path: PathBuf,
        found: String,
        expected: String,
    },
}

impl FsError {
    fn io(path: &Path, what: &'static str, cause: std::io::Error) -> FsError {
        FsError::Io {
            path: path.to_path_buf(),
            what,
            cause,
        }
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs `fill` on a fresh temporary file next to `path`, then renames it onto `path`. On any
/// error the temporary file is removed and `path` is left as it was, so readers (and caches
/// keyed on the name) see the old file or the complete new one, never a part.
///
/// The data is synced before the rename: a crash right after it cannot leave a
/// complete-looking but empty file.
pub fn write_with<T, E: From<FsError>>(
    path: &Path,
    fill: impl FnOnce(&mut File) -> Result<T, E>,
) -> Result<T, E> {
    let file_name = path
        .file_name()
        .ok_or_else(|| FsError::NoFileName(path.to_path_buf()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| FsError::io(&dir, "create the directory", e))?;
    let (temp, mut file) =
        create_temp(&dir, file_name).map_err(|e| FsError::io(&dir, "create a file in", e))?;
    let result = fill(&mut file).and_then(|value| {
        file.sync_data()
            .map_err(|e| FsError::io(path, "write", e))?;
        drop(file);
        std::fs::rename(&temp, path).map_err(|e| FsError::io(path, "replace", e))?;
        Ok(value)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Writes `bytes` to `path` whole or not at all (see [`write_with`]).
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_with(path, |f| {
        f.write_all(bytes)
            .map_err(|e| FsError::io(path, "write", e))
    })
}

fn create_temp(dir: &Path, file_name: &OsStr) -> std::io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = OsString::from(".");
        name.push(file_name);
        name.push(format!(".{pid}.{n}.partial"));
        let candidate = dir.join(name);
        match File::options()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(f) => return Ok((candidate, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Opens the CSV `path` for appending, writing the header to a new or empty file; a file with
/// another header is an error (rather than a file no tool can read). The upstream result CSV,
/// `gpu_monitoring.csv` and `session_properties.csv` all open this way.
pub fn open_csv_appending(path: &Path, columns: &[&str]) -> Result<File, FsError> {
    let header = columns.join(",");
    let existing = match File::open(path) {
        Ok(f) => {
            let mut first = String::new();
            BufReader::new(f)
                .read_line(&mut first)
                .map_err(|e| FsError::io(path, "read", e))?;
            Some(first.trim_end().to_string())
        }
        Err(_) => None,
    };
    if let Some(first) = &existing
        && !first.is_empty()
        && *first != header
    {
        return Err(FsError::Header {
            path: path.to_path_buf(),
            found: first.clone(),
            expected: header,
        });
    }
    let mut file = File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| FsError::io(path, "open", e))?;
    if existing.is_none_or(|f| f.is_empty()) {
        writeln!(file, "{header}")
            .and_then(|_| file.sync_data())
            .map_err(|e| FsError::io(path, "write", e))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_fill_leaves_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.txt");
        write(&path, b"old").expect("write");
        let r: Result<(), FsError> = write_with(&path, |f| {
            f.write_all(b"half")
                .map_err(|e| FsError::io(&path, "write", e))?;
            Err(FsError::NoFileName(PathBuf::from("x")))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .collect();
        assert_eq!(left.len(), 1, "the temporary file is removed");
    }

    #[test]
    fn csv_header_written_once_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.csv");
        drop(open_csv_appending(&path, &["a", "b"]).expect("open"));
        drop(open_csv_appending(&path, &["a", "b"]).expect("reopen"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a,b\n");
        let e = open_csv_appending(&path, &["a", "c"]).expect_err("other header");
        assert!(e.to_string().contains(":1: the header is `a,b`"), "{e}");
    }

    #[test]
    fn an_io_error_is_said_once_in_an_error_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.csv");
        std::fs::create_dir(&path).expect("a directory where the file goes");
        let e = anyhow::Error::from(open_csv_appending(&path, &["a"]).expect_err("a directory"));
        let chain = format!("{e:#}");
        assert_eq!(chain.matches("Is a directory").count(), 1, "{chain}");
        assert!(
            chain.starts_with(&format!("{}: cannot ", path.display())),
            "{chain}"
        );
    }
}
