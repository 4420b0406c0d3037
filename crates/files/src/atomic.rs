//! Replacing one file atomically.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::Error;

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a part.
/// Missing parent directories are created.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), Error> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes.as_ref())
        .map_err(Error::at("could not write", &file.tmp))?;
    file.commit()
}

/// Writes `value` as pretty-printed JSON with a final newline, atomically (see [`write`]).
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), Error> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::new("could not serialise the JSON for", path, e.into()))?;
    bytes.push(b'\n');
    write(path, bytes)
}

/// Writes one compact JSON line per item, atomically (see [`write`]).
pub fn write_jsonl<T: Serialize>(
    path: &Path,
    items: impl IntoIterator<Item = T>,
) -> Result<(), Error> {
    let mut file = AtomicFile::create(path)?;
    let tmp = file.tmp.clone();
    let mut out = BufWriter::new(&mut file);
    for item in items {
        serde_json::to_writer(&mut out, &item)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(Error::at("could not write", &tmp))?;
    }
    out.flush().map_err(Error::at("could not write", &tmp))?;
    drop(out);
    file.commit()
}

/// A file being written under a temporary name beside its target; [`AtomicFile::commit`] puts
/// it in the target's place. Dropped without a commit, the temporary file is removed and the
/// target is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Starts writing a new version of `target` (creating missing parent directories).
    pub fn create(target: &Path) -> Result<AtomicFile, Error> {
        let dir = parent(target)?;
        fs::create_dir_all(dir).map_err(Error::at("could not create the directory", dir))?;
        let (tmp, file) = unused_sibling(target, "tmp", |p| {
            OpenOptions::new().write(true).create_new(true).open(p)
        })?;
        Ok(AtomicFile {
            file,
            tmp,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// The file this will replace.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Makes the written bytes durable and puts them in the target's place: fsync, rename,
    /// fsync of the directory.
    pub fn commit(mut self) -> Result<(), Error> {
        self.file
            .sync_all()
            .map_err(Error::at("could not sync", &self.tmp))?;
        fs::rename(&self.tmp, &self.target).map_err(Error::at(
            "could not move the finished file into place at",
            &self.target,
        ))?;
        self.committed = true;
        sync_dir(parent(&self.target)?)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// The directory `path` is in (`.` for a bare file name); an error when `path` names no file.
pub(crate) fn parent(path: &Path) -> Result<&Path, Error> {
    if path.file_name().is_none() {
        return Err(Error::new(
            "could not write",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file"),
        ));
    }
    Ok(path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new(".")))
}

/// Makes the entries of `dir` (a rename, a new file) survive a power cut.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::at("could not sync the directory", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates something (with `make`, which must fail with `AlreadyExists` on a taken name) under a
/// hidden name beside `target`: `.{name}.{tag}-{pid}-{n}`. The counter keeps threads of one
/// process apart; the retry steps over leftovers of a killed process that had the same pid.
pub(crate) fn unused_sibling<T>(
    target: &Path,
    tag: &str,
    mut make: impl FnMut(&Path) -> io::Result<T>,
) -> Result<(PathBuf, T), Error> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let candidate = target.with_file_name(format!(".{name}.{tag}-{}-{n}", std::process::id()));
        match make(&candidate) {
            Ok(made) => return Ok((candidate, made)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::new("could not create", &candidate, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::names_in;

    #[test]
    fn a_write_replaces_the_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write(&path, b"old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(names_in(dir.path()), ["x.json"]);
    }

    #[test]
    fn an_abandoned_write_leaves_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        write(&path, b"old").unwrap();
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"half of the new").unwrap();
        // Before the commit, readers still see the old file.
        assert_eq!(fs::read(&path).unwrap(), b"old");
        drop(file);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names_in(dir.path()), ["x"]);
    }

    #[test]
    fn missing_parent_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.jsonl");
        write_jsonl(&path, [serde_json::json!({"a": 1}), serde_json::json!("b")]).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"a\":1}\n\"b\"\n");
    }

    #[test]
    fn json_is_pretty_with_a_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let value = serde_json::json!({"a": [1, 2]});
        write_json(&path, &value).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n") && text.contains("\n  "), "{text:?}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            value
        );
    }

    #[test]
    fn an_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "").unwrap();
        // A parent that is a regular file cannot become a directory.
        let err = write(&blocker.join("x"), b"x").unwrap_err().to_string();
        assert!(err.contains(&*blocker.to_string_lossy()), "{err}");
        let err = write(Path::new("/"), b"x").unwrap_err().to_string();
        assert!(err.contains("does not name a file"), "{err}");
    }

    #[test]
    fn writers_on_many_threads_each_leave_a_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let path = &path;
                s.spawn(move || write(path, vec![i; 4096]).unwrap());
            }
        });
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|b| *b == bytes[0]), "a mix of writers");
        assert_eq!(names_in(dir.path()), ["x"]);
    }
}
