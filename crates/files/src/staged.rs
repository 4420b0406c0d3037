//! Replacing a directory (or a file another library writes) atomically.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::atomic::{parent, sync_dir, unused_sibling};

/// Something built under a temporary name beside its target, then put in the target's place by
/// one rename in [`Staged::commit`]: a checkpoint or exported model directory, or a database file
/// that its own library creates. Dropped without a commit, what was built is removed and the
/// target is untouched.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staged {
    /// An empty directory beside `target` to fill (missing parent directories are created).
    pub fn dir(target: &Path) -> Result<Staged, Error> {
        Self::beside(target, |p| fs::create_dir(p))
    }

    /// A fresh path beside `target` with nothing there yet, for a writer that creates the file
    /// itself (DuckDB opens a database by path).
    pub fn file(target: &Path) -> Result<Staged, Error> {
        Self::beside(target, free)
    }

    fn beside(target: &Path, make: impl FnMut(&Path) -> io::Result<()>) -> Result<Staged, Error> {
        let dir = parent(target)?;
        fs::create_dir_all(dir).map_err(Error::at("could not create the directory", dir))?;
        let (tmp, ()) = unused_sibling(target, "tmp", make)?;
        Ok(Staged {
            tmp,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// Where to build: the temporary directory or file path.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Writes `bytes` to `name` inside the staged directory. No fsync yet: [`Staged::commit`]
    /// syncs everything at once.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> Result<(), Error> {
        let path = self.tmp.join(name);
        fs::write(&path, bytes).map_err(Error::at("could not write", &path))
    }

    /// Makes everything built durable, then puts it in the target's place. A target that
    /// already exists is first moved aside and removed after the rename, so a failure part way
    /// never loses it.
    pub fn commit(mut self) -> Result<(), Error> {
        sync_tree(&self.tmp)?;
        let dir = parent(&self.target)?;
        let old = match fs::symlink_metadata(&self.target) {
            Ok(_) => {
                let (old, ()) = unused_sibling(&self.target, "old", free)?;
                fs::rename(&self.target, &old).map_err(Error::at(
                    "could not move aside the old copy of",
                    &self.target,
                ))?;
                Some(old)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::new("could not look at", &self.target, e)),
        };
        if let Err(e) = fs::rename(&self.tmp, &self.target) {
            if let Some(old) = &old {
                let _ = fs::rename(old, &self.target);
            }
            return Err(Error::new(
                "could not move the finished copy into place at",
                &self.target,
                e,
            ));
        }
        self.committed = true;
        sync_dir(dir)?;
        if let Some(old) = old {
            remove(&old).map_err(Error::at("could not remove the replaced copy", &old))?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = remove(&self.tmp);
        }
    }
}

/// Ok when nothing is at `path`; `AlreadyExists` when something is.
fn free(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(_) => Err(io::ErrorKind::AlreadyExists.into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Fsyncs every file and directory under `path` (or `path` itself when it is a file).
fn sync_tree(path: &Path) -> Result<(), Error> {
    let meta = fs::symlink_metadata(path).map_err(Error::at("could not look at", path))?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(Error::at("could not list", path))? {
            let entry = entry.map_err(Error::at("could not list", path))?;
            sync_tree(&entry.path())?;
        }
        sync_dir(path)
    } else if meta.is_file() {
        File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(Error::at("could not sync", path))
    } else {
        Ok(())
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::names_in;

    #[test]
    fn a_committed_directory_replaces_the_old_one_whole() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("ckpt/step-1");
        let first = Staged::dir(&target).unwrap();
        first.write("a", "1").unwrap();
        first.write("stale", "x").unwrap();
        first.commit().unwrap();

        let second = Staged::dir(&target).unwrap();
        second.write("a", "2").unwrap();
        fs::create_dir(second.path().join("sub")).unwrap();
        second.write("sub/b", "3").unwrap();
        // Until the commit, readers see the first version.
        assert_eq!(names_in(&target), ["a", "stale"]);
        second.commit().unwrap();

        assert_eq!(names_in(&target), ["a", "sub"]);
        assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "2");
        assert_eq!(fs::read_to_string(target.join("sub/b")).unwrap(), "3");
        assert_eq!(names_in(&root.path().join("ckpt")), ["step-1"]);
    }

    #[test]
    fn an_abandoned_directory_is_removed_and_the_old_one_kept() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("out");
        let first = Staged::dir(&target).unwrap();
        first.write("a", "1").unwrap();
        first.commit().unwrap();
        let second = Staged::dir(&target).unwrap();
        second.write("a", "2").unwrap();
        drop(second);
        assert_eq!(names_in(root.path()), ["out"]);
        assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "1");
    }

    #[test]
    fn a_staged_file_path_is_free_until_the_writer_creates_it() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("db.duckdb");
        fs::write(&target, "old").unwrap();
        let staged = Staged::file(&target).unwrap();
        assert!(!staged.path().exists());
        assert_eq!(staged.path().parent(), target.parent());
        fs::write(staged.path(), "new").unwrap();
        staged.commit().unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(names_in(root.path()), ["db.duckdb"]);
    }
}
