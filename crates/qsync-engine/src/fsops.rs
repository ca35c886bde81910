//! File operations on the daemon's own state folder (never on a task folder: those go
//! through [`crate::driver::root`]).

use std::fs;
use std::io;
use std::path::Path;

/// Make everything written so far on the file systems holding `folders` durable: one
/// `syncfs` per file system (folders on the same one are synced once). This is how a batch
/// of kept blobs costs one flush instead of an fsync each.
pub fn sync_file_systems(folders: &[&Path]) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut done = Vec::new();
    for folder in folders {
        let dir = fs::File::open(folder)?;
        let device = dir.metadata()?.dev();
        if !done.contains(&device) {
            rustix::fs::syncfs(&dir)?;
            done.push(device);
        }
    }
    Ok(())
}
