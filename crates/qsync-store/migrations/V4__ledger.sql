-- The sync core's ledger (qsync-core's `Ledger`): per path, the newest version's state and
-- version vector, numbered in this device's change sequence. It replaces `files`, `updates`
-- and `pending` once the daemon drives the core: a device's pending updates are then the
-- records whose `seq` is above what that device acknowledged (`peer_progress.acked_upto`).
CREATE TABLE records (
    task_id BLOB NOT NULL REFERENCES sync_tasks (task_id) ON DELETE CASCADE,
    path    TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    -- 0 deleted (a tombstone), 1 file, 2 folder, 3 symlink
    kind    INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 3),
    hash    BLOB CHECK (hash IS NULL OR length(hash) = 32),
    size    INTEGER NOT NULL DEFAULT 0,
    mode    INTEGER NOT NULL DEFAULT 0,
    target  TEXT,
    mtime   INTEGER NOT NULL,
    -- the version vector: postcard of a list of (device id, counter)
    version BLOB NOT NULL,
    PRIMARY KEY (task_id, path)
) WITHOUT ROWID;
CREATE UNIQUE INDEX records_by_seq ON records (task_id, seq);

-- How far each linked device's sequence has been processed here, and how far it
-- acknowledged ours.
CREATE TABLE peer_progress (
    task_id       BLOB NOT NULL REFERENCES sync_tasks (task_id) ON DELETE CASCADE,
    device_id     BLOB NOT NULL,
    received_upto INTEGER NOT NULL DEFAULT 0,
    acked_upto    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, device_id)
) WITHOUT ROWID;

-- Versions received from a peer, concurrent with ours, that ours won: decided again when
-- ours changes. Same columns as `records` (seq is the peer's).
CREATE TABLE rivals (
    task_id   BLOB NOT NULL REFERENCES sync_tasks (task_id) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    device_id BLOB NOT NULL,
    seq       INTEGER NOT NULL,
    kind      INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 3),
    hash      BLOB CHECK (hash IS NULL OR length(hash) = 32),
    size      INTEGER NOT NULL DEFAULT 0,
    mode      INTEGER NOT NULL DEFAULT 0,
    target    TEXT,
    mtime     INTEGER NOT NULL,
    version   BLOB NOT NULL,
    PRIMARY KEY (task_id, path, device_id)
) WITHOUT ROWID;
