//! Content for the core's fetches: the sending side streams a file in chunks and vouches
//! for it only if it still hashes to what was asked ([`serve`]); the receiving side takes
//! the chunks in order, within the announced size, checks the hash, and stages the content
//! durably under its hash ([`Incoming`]).
//!
//! An edit travels as a patch from the version the asker has: made from the copy kept here
//! when there is one, or else from the block signature of its version that the asker sends
//! when asked ([`sign`], [`IncomingSignature`]: rsync's exchange, for files whose copy was
//! evicted to keep the state folder small).

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::Path;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use qsync_base::{check_block_len, ContentHash, PieceHasher, RelPath, PIECE_LEN};
use qsync_delta::Signature;
use qsync_store::direct::{self, Appender};
use qsync_wire::{Message, MAX_CHUNK_LEN};

use super::in_place;
use super::place::Staging;
use super::root::TaskRoot;
use crate::EngineError;

mod signatures;
pub use signatures::{sign, IncomingSignature, MAX_SIGNATURE_MEMORY, MIN_SIGNED_FILE};

/// What a patch for the asker is made from.
#[derive(Debug, Clone, Copy)]
pub enum Base<'a> {
    /// A copy of the asker's version kept here.
    Kept(&'a Path),
    /// The block signature of its version the asker sent.
    Blocks(&'a Signature),
}

/// Send the content `hash` at `path` of the task folder `root` through `send` (which
/// returns false once the connection is gone): chunks, then `Content { last: true }` if
/// what was read still hashes to `hash`, or `Unavailable` if it does not (changed, gone,
/// not a regular file, or reached through a symlink).
///
/// With `base` (the content the asker has, and what is known of it here), a patch from it
/// is sent instead when one is worth it ([`Message::Delta`]).
///
/// With `offset`, the asker has the first `offset` bytes already (a transfer cut short),
/// and `checks` of them ([`PieceHasher::checks`]): they are read and hashed here, not
/// sent, and the rest follows — from the first block whose check differs from this
/// copy's, when one does (the asker's part holds wrong bytes there: a liar's, or torn by a
/// power cut).
pub fn serve(
    root: &Path,
    path: &RelPath,
    hash: ContentHash,
    base: Option<(ContentHash, Base<'_>)>,
    (offset, checks): (u64, &[ContentHash]),
    mut send: impl FnMut(Message) -> bool,
) {
    let unavailable = || Message::Unavailable {
        path: path.clone(),
        hash,
    };
    // Beneath the root, never through a link, and only a regular file: a symlink planted
    // at the path (to `/dev/zero`, to a file outside) is never read through.
    let Ok(mut file) = TaskRoot::open(root).and_then(|r| r.open_file(path)) else {
        send(unavailable());
        return;
    };
    if let Some((base, from)) = base {
        match patch_for(&mut file, path, hash, (base, from)) {
            Ok(Some(patch)) => {
                send_ending(&patch, &mut send, |offset, data, last| Message::Delta {
                    path: path.clone(),
                    hash,
                    base,
                    offset,
                    data,
                    last,
                });
                return;
            }
            Ok(None) => {}
            Err(()) => {
                send(unavailable());
                return;
            }
        }
    }
    let last = match send_whole(&mut file, path, hash, (offset, checks), &mut send) {
        // The last chunk read goes with `last` once the whole was checked (protocol 7:
        // a file of one chunk is one message).
        Sent::Whole(end, held) => {
            let (offset, data) = held.unwrap_or((end, Vec::new()));
            Message::Content {
                path: path.clone(),
                hash,
                offset,
                data: Bytes::from(data),
                last: true,
            }
        }
        Sent::NotIt => unavailable(),
        // The connection went, or stopped taking what is sent: nothing more (the asker
        // resumes from what it has).
        Sent::Stopped => return,
    };
    send(last);
}

/// How sending a whole content ended.
enum Sent {
    /// All of it, ending at this offset, and it hashes to what was asked; its last chunk
    /// (where it starts, its bytes), read and not sent yet, if it has any.
    Whole(u64, Option<(u64, Vec<u8>)>),
    /// What was read is not the content asked for (changed, or unreadable).
    NotIt,
    /// The connection went, or stopped taking what is sent.
    Stopped,
}

/// A patch of the open `file` (which should hold `hash`) from `base`, if one is worth
/// it. `Err` when the file cannot be read again from its start for the whole content.
fn patch_for(
    file: &mut std::fs::File,
    path: &RelPath,
    hash: ContentHash,
    (base, from): (ContentHash, Base<'_>),
) -> Result<Option<Vec<u8>>, ()> {
    let began = std::time::Instant::now();
    let patch = match from {
        Base::Kept(base_file) => patch_from((base, base_file), file, hash),
        Base::Blocks(sig) => {
            let patch = patch_from_blocks(sig, file, hash);
            // Read for the patch: the whole content, if it goes, is read from the start.
            if patch.is_none() && file.rewind().is_err() {
                return Err(());
            }
            patch
        }
    };
    tracing::debug!(%path, took = ?began.elapsed(), bytes = patch.as_ref().map(Vec::len), "made a patch");
    Ok(patch)
}

/// Send `file`'s content from `from` in chunks: its first `from` bytes, which the asker
/// has, are read and hashed, and sent only from the first block whose check differs
/// from the asker's `checks` (after a [`Message::Resend`] saying so). The content is
/// vouched for whole only if what was read, and hashed, as it was sent hashes to `hash`.
fn send_whole(
    file: &mut std::fs::File,
    path: &RelPath,
    hash: ContentHash,
    (from, checks): (u64, &[ContentHash]),
    send: &mut impl FnMut(Message) -> bool,
) -> Sent {
    let mut hasher = PieceHasher::new();
    let mut offset = match resume_at(file, path, hash, (from, checks), &mut hasher, send) {
        Ok(offset) => offset,
        Err(ended) => return ended,
    };
    // Each chunk is read into a buffer of its own, sized to what is left of the file, and
    // sent as it is: no zeroed megabyte per file served, no copy of what was read (a drop
    // of many small files spent a tenth of the serving thread on both). A chunk is sent
    // once the next is read: the last one waits for the hash, and goes as the end.
    let size = file.metadata().map_or(0, |m| m.len());
    let mut held: Option<(u64, Vec<u8>)> = None;
    loop {
        let left = size.saturating_sub(offset).min(MAX_CHUNK_LEN as u64) as usize;
        let mut data = Vec::with_capacity(left);
        let n = match (&mut *file)
            .take(MAX_CHUNK_LEN as u64)
            .read_to_end(&mut data)
        {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => return Sent::NotIt,
        };
        if data.capacity() > n {
            data.shrink_to_fit(); // a file grown since it was measured: no spare megabyte held
        }
        hasher.update(&data);
        if let Some((at, before)) = held.replace((offset, data)) {
            let message = Message::Content {
                path: path.clone(),
                hash,
                offset: at,
                data: Bytes::from(before),
                last: false,
            };
            if !send(message) {
                return Sent::Stopped;
            }
        }
        offset += n as u64;
    }
    if hasher.finish() == hash {
        Sent::Whole(offset, held)
    } else {
        Sent::NotIt
    }
}

/// Read and hash the first `from` bytes of `file` (the part the asker has, for a resumed
/// transfer), and find where the asker's `checks` part from this copy's: there the asker is
/// told ([`Message::Resend`]) and the file read again. The offset to send from, or how
/// sending ended.
fn resume_at(
    file: &mut std::fs::File,
    path: &RelPath,
    hash: ContentHash,
    (from, checks): (u64, &[ContentHash]),
    hasher: &mut PieceHasher,
    send: &mut impl FnMut(Message) -> bool,
) -> Result<u64, Sent> {
    // Only a resumed transfer reads the asker's part here first.
    let mut buffer = vec![0u8; if from > 0 { MAX_CHUNK_LEN } else { 0 }];
    let mut offset = 0u64;
    while offset < from {
        let want = (from - offset).min(buffer.len() as u64) as usize;
        match file.read(&mut buffer[..want]) {
            Ok(0) => break, // shorter than the asker's part: not this content
            Ok(n) => {
                hasher.update(&buffer[..n]);
                offset += n as u64;
            }
            Err(_) => return Err(Sent::NotIt),
        }
    }
    if offset == from && from > 0 {
        // Where the asker's part parts from this copy, the bytes from there are sent
        // again: the asker is told, and they are read (and hashed) again from there.
        let ours = hasher.checks();
        if let Some(block) = (0..ours.len()).find(|&i| checks.get(i) != Some(&ours[i])) {
            let start = block as u64 * check_block_len(from);
            if hasher.rewind(start) != start || file.seek(std::io::SeekFrom::Start(start)).is_err()
            {
                return Err(Sent::NotIt);
            }
            let told = send(Message::Resend {
                path: path.clone(),
                hash,
                asked: from,
                from: start,
            });
            if !told {
                return Err(Sent::Stopped);
            }
            offset = start;
        }
    }
    Ok(offset)
}

/// Send `bytes` as messages of at most [`MAX_CHUNK_LEN`] made by `message(offset, data,
/// last)`, then the last (empty) one; stops once `send` says the connection is gone.
fn send_chunks(
    bytes: &[u8],
    send: &mut impl FnMut(Message) -> bool,
    message: impl Fn(u64, Bytes, bool) -> Message,
) {
    for (i, data) in bytes.chunks(MAX_CHUNK_LEN).enumerate() {
        let offset = (i * MAX_CHUNK_LEN) as u64;
        if !send(message(offset, Bytes::copy_from_slice(data), false)) {
            return;
        }
    }
    send(message(bytes.len() as u64, Bytes::new(), true));
}

/// Send `bytes` as messages of at most [`MAX_CHUNK_LEN`] made by `message(offset, data,
/// last)`, the last of them saying so (one empty message when there are none: protocol 7,
/// where the end of a patch is no message of its own); stops once `send` says the
/// connection is gone.
fn send_ending(
    bytes: &[u8],
    send: &mut impl FnMut(Message) -> bool,
    message: impl Fn(u64, Bytes, bool) -> Message,
) {
    let chunks = bytes.len().div_ceil(MAX_CHUNK_LEN);
    if chunks == 0 {
        send(message(0, Bytes::new(), true));
        return;
    }
    for (i, data) in bytes.chunks(MAX_CHUNK_LEN).enumerate() {
        let offset = (i * MAX_CHUNK_LEN) as u64;
        if !send(message(
            offset,
            Bytes::copy_from_slice(data),
            i + 1 == chunks,
        )) {
            return;
        }
    }
}

/// A patch from `base_file` to the open `file`, if `file` holds `hash` and a patch is
/// worth it (smaller than the content by the delta codec's rule). The file is read through
/// its open descriptor, never by its name again.
fn patch_from(
    (base, base_file): (ContentHash, &Path),
    file: &std::fs::File,
    hash: ContentHash,
) -> Option<Vec<u8>> {
    patch_with(
        (base, base_file),
        file,
        hash,
        &qsync_delta::Options::default(),
    )
}

/// A patch from the kept copy `base_file` of `base` to the open `file`, if `file` holds
/// `hash` and a patch of at most `max` bytes does it (the encoder gives up past it: an
/// edit that changed much is never held whole in memory). For a patch sent with its
/// record (`sync/inline.rs`).
pub fn patch_within(
    (base, base_file): (ContentHash, &Path),
    file: &std::fs::File,
    hash: ContentHash,
    max: usize,
) -> Option<Vec<u8>> {
    let options = qsync_delta::Options {
        max_patch_len: max as u64,
        ..qsync_delta::Options::default()
    };
    patch_with((base, base_file), file, hash, &options).filter(|patch| patch.len() <= max)
}

fn patch_with(
    (base, base_file): (ContentHash, &Path),
    file: &std::fs::File,
    hash: ContentHash,
    options: &qsync_delta::Options,
) -> Option<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let by_fd = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let mut patch = Vec::new();
    // The kept copy is named by the hash of what it holds; the file is checked against
    // `hash` as it is read (an error if it changed since).
    let encoded =
        qsync_delta::encode_file_known(base_file, &by_fd, &mut patch, options, (base, hash));
    match encoded {
        Ok(qsync_delta::Encoded::Patch { .. }) => Some(patch),
        _ => None,
    }
}

/// A patch from the version `sig` describes to the open `file`, if `file` holds `hash`
/// and a patch is worth it (and within what the asker accepts, [`MAX_PATCH`]).
fn patch_from_blocks(sig: &Signature, file: &std::fs::File, hash: ContentHash) -> Option<Vec<u8>> {
    let options = qsync_delta::Options {
        max_patch_len: MAX_PATCH,
        ..qsync_delta::Options::default()
    };
    match qsync_delta::encode_blocks(
        sig,
        std::io::BufReader::with_capacity(1 << 20, file),
        &options,
    ) {
        Ok(qsync_delta::Delta::Patch(patch)) if patch.header().target_hash == hash => {
            Some(patch.into_bytes())
        }
        _ => None,
    }
}

pub use crate::exchange::MAX_PATCH;

/// Free space left over when new content is received: content that would leave less than
/// this on the file system is not asked for (until space is freed).
pub const FREE_SPACE_MARGIN: u64 = 16 * 1024 * 1024;

/// How long a measure of a file system's free space stands (less what was asked of it
/// since): a `statvfs` of staging and of the folder for every file wanted was four system
/// calls per file on a drop of many small ones.
pub const FREE_SPACE_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The free space of the file systems new content is written to, measured at most once
/// per [`FREE_SPACE_FRESH`] while what was asked since fits in what was measured.
#[derive(Debug, Default)]
pub struct FreeSpace {
    /// Per place: its file system, the bytes free there when measured, when, and the
    /// bytes asked of it since (every yes counted whole: never less than was written).
    measured: std::cell::RefCell<HashMap<std::path::PathBuf, Measure>>,
}

#[derive(Debug, Clone, Copy)]
struct Measure {
    fsid: u64,
    free: u64,
    at: Instant,
    asked: u64,
}

impl FreeSpace {
    /// Whether `size` more bytes fit on the file systems of each of `places` with
    /// [`FREE_SPACE_MARGIN`] left (places on one file system counted once, as a single
    /// copy is written there: staged content is renamed into place when it can be). The
    /// reason when they do not. A measure older than [`FREE_SPACE_FRESH`], or one that
    /// would not hold `size` more after what was asked since, is taken again.
    pub fn room_for(
        &self,
        places: &[std::path::PathBuf],
        size: u64,
        now: Instant,
    ) -> Result<(), String> {
        let mut measured = self.measured.borrow_mut();
        let mut seen = Vec::new();
        for place in places {
            let needed = size.saturating_add(FREE_SPACE_MARGIN);
            let fresh = measured.get(place).copied().filter(|m| {
                now.saturating_duration_since(m.at) < FREE_SPACE_FRESH
                    && m.free.saturating_sub(m.asked) >= needed
            });
            let m = match fresh {
                Some(m) => m,
                None => {
                    let Ok(vfs) = rustix::fs::statvfs(place.as_path()) else {
                        measured.remove(place);
                        continue; // cannot tell: the write itself will say
                    };
                    let m = Measure {
                        fsid: vfs.f_fsid,
                        free: vfs.f_bavail.saturating_mul(vfs.f_frsize),
                        at: now,
                        asked: 0,
                    };
                    measured.insert(place.clone(), m);
                    m
                }
            };
            if seen.contains(&m.fsid) {
                continue;
            }
            seen.push(m.fsid);
            let free = m.free.saturating_sub(m.asked);
            if needed > free {
                return Err(format!(
                    "{size} bytes would not fit in the {free} bytes free at {} (keeping {FREE_SPACE_MARGIN} spare)",
                    place.display()
                ));
            }
        }
        for place in places {
            if let Some(m) = measured.get_mut(place) {
                m.asked = m.asked.saturating_add(size);
            }
        }
        Ok(())
    }
}

/// A count shared by the transfers under one limit (open files of a device, bytes of
/// patches in memory). Each transfer holds its share and gives it back when dropped, so
/// the count is right however a transfer ends.
#[derive(Debug, Clone, Default)]
pub struct Budget(Arc<AtomicUsize>);

impl Budget {
    /// How much is held now.
    pub fn used(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Take `n` more if the total stays within `max`; given back when the share drops.
    pub fn take(&self, n: usize, max: usize) -> Option<Share> {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|total| *total <= max)
            })
            .ok()?;
        Some(Share {
            budget: self.clone(),
            n,
        })
    }
}

/// A share of a [`Budget`], given back when dropped.
#[derive(Debug)]
pub struct Share {
    budget: Budget,
    n: usize,
}

impl Share {
    /// Hold `more` as well, within `max`.
    fn grow(&mut self, more: usize, max: usize) -> bool {
        match self.budget.take(more, max) {
            Some(mut extra) => {
                self.n += std::mem::take(&mut extra.n);
                true
            }
            None => false,
        }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.budget.0.fetch_sub(self.n, Ordering::Relaxed);
    }
}

/// A patch on its way in, kept in memory (within the limits the exchange enforces, see
/// [`crate::exchange`]).
pub struct IncomingPatch {
    base: ContentHash,
    hash: ContentHash,
    size: u64,
    patch: Vec<u8>,
}

impl IncomingPatch {
    /// Start receiving a patch from `base` to the content `hash` of `size` bytes.
    pub fn start(base: ContentHash, hash: ContentHash, size: u64) -> Self {
        Self {
            base,
            hash,
            size,
            patch: Vec::new(),
        }
    }

    /// Take one chunk (the exchange checked its order and size).
    pub fn accept(&mut self, data: &[u8]) {
        self.patch.extend_from_slice(data);
    }

    /// Apply the patch to the file at `path` of the task folder `root` (the asker's file,
    /// which must still hold the base) and stage the result if it is the content asked
    /// for (true). The base is opened through [`TaskRoot`] (beneath the root, never through
    /// a link, only a regular file) and read through that one descriptor; the result is
    /// bounded by the size the record announced.
    pub fn finish(
        self,
        root: &Path,
        path: &RelPath,
        staging: &Staging,
    ) -> Result<bool, EngineError> {
        let Ok(header) = qsync_delta::Header::read(&mut &self.patch[..]) else {
            return Ok(false);
        };
        if header.source_hash != self.base
            || header.target_hash != self.hash
            || header.target_len != self.size
        {
            return Ok(false);
        }
        let old = match TaskRoot::open(root).and_then(|r| r.open_file(path)) {
            Ok(old) => old,
            Err(e) => {
                tracing::debug!(error = %e, "the base of a received patch is not a file here");
                return Ok(false);
            }
        };
        let shown = path.to_local(root);
        let began = std::time::Instant::now();
        // An edit that keeps the length is staged as the runs it changes, to be written
        // into the file (`in_place.rs`), once the result they give is checked.
        let editable = old.metadata().is_ok_and(|m| in_place::editable(&m));
        if self.size >= in_place::IN_PLACE_MIN && editable {
            let max = in_place::max_edit_bytes(self.size);
            match qsync_delta::in_place_edits(&self.patch, &old, &shown, max) {
                Ok(Some(edits)) => {
                    staging.put_edits(&edits)?;
                    tracing::debug!(%path, took = ?began.elapsed(), bytes = edits.len(), "staged a patch's edits in place");
                    return Ok(true);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "a received patch did not apply");
                    return Ok(false);
                }
            }
        }
        let target = staging.path_of(&self.hash);
        // The result's hash is checked (not the base's first: a file that no longer holds
        // the base gives another result, refused the same way).
        match qsync_delta::apply_open_checking_result(&self.patch[..], &old, &shown, &target) {
            Ok(_) => {
                tracing::debug!(%path, took = ?began.elapsed(), "applied a patch");
                Ok(true)
            }
            Err(e) => {
                tracing::debug!(error = %e, "a received patch did not apply");
                Ok(false)
            }
        }
    }
}

/// Content on its way in: written to its part file in the staging folder as it comes
/// (`.partial-<hash>`, kept when the transfer is cut short, so that it resumes from there).
pub struct Incoming {
    hash: ContentHash,
    size: u64,
    next: u64,
    hasher: PieceHasher,
    /// The part file, written straight to the disk when the content is large (see
    /// `qsync_store::direct`).
    out: Appender,
    path: std::path::PathBuf,
}

impl Incoming {
    /// Bytes of the content received so far.
    pub fn received(&self) -> u64 {
        self.next
    }

    /// Receive the content `hash` of `size` bytes (as its record announced) from byte
    /// `from`: the part file's first `from` bytes (kept from a transfer cut short) are
    /// read and hashed, the rest of it cut off.
    pub fn open(
        staging: &Staging,
        hash: ContentHash,
        size: u64,
        from: u64,
    ) -> Result<Self, EngineError> {
        let path = staging.partial_path(&hash);
        let io = |op, e| EngineError::io(op, &path, e);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("open", e))?;
        let mut hasher = PieceHasher::new();
        if from > 0 {
            let mut prefix = (&mut file).take(from);
            let mut buffer = vec![0u8; 1 << 20];
            let mut read = 0u64;
            loop {
                let n = prefix.read(&mut buffer).map_err(|e| io("read", e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                read += n as u64;
            }
            if read != from {
                return Err(EngineError::State(format!(
                    "the part of {hash} kept here has {read} bytes, not {from}"
                )));
            }
        }
        // Cut only what is past the resume point: truncating a new, empty file made ext4
        // take it for a file rewritten in place and write it out at its close, on the
        // engine's thread (its "auto_da_alloc"), where its fsync in a batch is enough.
        let len = file.metadata().map_err(|e| io("inspect", e))?.len();
        if len != from {
            file.set_len(from).map_err(|e| io("cut", e))?;
        }
        let direct = size >= direct::DIRECT_MIN;
        let out = Appender::new(file, from, direct).map_err(|e| io("write", e))?;
        Ok(Self {
            hash,
            size,
            next: from,
            hasher,
            out,
            path,
        })
    }

    /// The checks of the bytes received so far, for a request of the rest
    /// ([`PieceHasher::checks`]).
    pub fn checks(&self) -> Vec<ContentHash> {
        self.hasher.checks()
    }

    /// Drop the bytes from `to` on (a block's start: the holder asked sends them again,
    /// its copy differs from them). False if `to` is not a piece's start, or past what
    /// was received.
    pub fn rewind(&mut self, to: u64) -> Result<bool, EngineError> {
        if to == self.next {
            return Ok(true);
        }
        if to > self.next || !to.is_multiple_of(PIECE_LEN) {
            return Ok(false);
        }
        self.hasher.rewind(to);
        self.out
            .cut(to)
            .map_err(|e| EngineError::io("cut", &self.path, e))?;
        self.next = to;
        Ok(true)
    }

    /// Take one chunk. Chunks come in order and never past the announced size; anything
    /// else is the sender's error and ends this transfer.
    pub fn accept(&mut self, offset: u64, data: &[u8]) -> Result<(), EngineError> {
        let end = offset.checked_add(data.len() as u64);
        if offset != self.next || end.is_none_or(|end| end > self.size) {
            return Err(EngineError::State(format!(
                "content {} arrived out of order or past its {} bytes (offset {offset}, {} bytes)",
                self.hash,
                self.size,
                data.len()
            )));
        }
        self.out
            .write(data)
            .map_err(|e| EngineError::io("write", &self.path, e))?;
        self.hasher.update(data);
        self.next += data.len() as u64;
        Ok(())
    }

    /// The sender says it is complete: if it is whole and hashes to what was asked, it is
    /// staged (true); otherwise its part file is removed (false). Not synced: a placement
    /// makes its own copy durable before it is reported.
    pub fn finish(self, staging: &Staging) -> Result<bool, EngineError> {
        if self.next != self.size || self.hasher.finish() != self.hash {
            let _ = std::fs::remove_file(&self.path);
            return Ok(false);
        }
        self.out
            .finish()
            .map_err(|e| EngineError::io("write", &self.path, e))?;
        let target = staging.path_of(&self.hash);
        std::fs::rename(&self.path, &target).map_err(|e| EngineError::io("stage", &target, e))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
