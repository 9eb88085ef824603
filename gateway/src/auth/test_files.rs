//! Test support: files for `*_file` keys (tempfile), removed on drop.

use std::io::Write;

use tempfile::NamedTempFile;

/// A temporary file holding `contents`.
#[derive(Debug)]
pub(super) struct TempFile(NamedTempFile);

impl TempFile {
    pub(super) fn new(contents: impl AsRef<[u8]>) -> Self {
        let mut file = NamedTempFile::new().unwrap();
        file.write_all(contents.as_ref()).unwrap();
        file.flush().unwrap();
        Self(file)
    }

    pub(super) fn path(&self) -> &str {
        self.0.path().to_str().unwrap()
    }
}
