//! Whole-or-nothing file output: readers (and a cache keyed on the file name) never see a
//! half-written dataset, even when generation fails or the process is killed mid-way.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::DatasetError;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs `fill` on a fresh temporary file next to `path`, then renames it onto `path`.
/// On any error the temporary file is removed and `path` is left as it was.
///
/// The data is synced (`sync_data`) before the rename, so a crash right after it cannot leave
/// a complete-looking but empty file. Readers and other processes see either the old file or
/// the complete new one.
pub fn write_atomically<T>(
    path: &Path,
    fill: impl FnOnce(&mut File) -> Result<T, DatasetError>,
) -> Result<T, DatasetError> {
    let shown = path.display().to_string();
    let file_name = path
        .file_name()
        .ok_or_else(|| DatasetError::spec(format!("output path {shown} has no file name")))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| DatasetError::write(dir.display().to_string(), e))?;

    let (temp_path, mut file) = create_temp(&dir, file_name)
        .map_err(|e| DatasetError::write(format!("a temporary file in {}", dir.display()), e))?;
    let result = fill(&mut file).and_then(|value| {
        // The data must be on disk before the name points at it, or a crash right after the
        // rename could leave a complete-looking but empty file.
        file.sync_data()
            .map_err(|e| DatasetError::write(&shown, e))?;
        drop(file);
        std::fs::rename(&temp_path, path).map_err(|e| DatasetError::write(&shown, e))?;
        Ok(value)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp_path);
    }
    result
}

fn create_temp(dir: &Path, file_name: &std::ffi::OsStr) -> std::io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = std::ffi::OsString::from(".");
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
