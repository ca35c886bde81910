-- Versions: the files that a change from another device deleted or replaced here, and
-- those replaced by a restore, kept so that their person can bring them back (`qsync
-- versions`, `qsync restore`). Their bytes are outside the database, in the state
-- folder's `versions/<task>/<hash>` (one file per content: rows of the same content share
-- it). `by`: the device whose change removed it (NULL: this device's person).
CREATE TABLE versions (
    id       INTEGER PRIMARY KEY,
    task_id  BLOB NOT NULL REFERENCES sync_tasks (task_id) ON DELETE CASCADE,
    path     TEXT NOT NULL,
    hash     BLOB NOT NULL CHECK (length(hash) = 32),
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    kept_ns  INTEGER NOT NULL,
    by       BLOB CHECK (by IS NULL OR length(by) = 32),
    why      TEXT NOT NULL
);
CREATE INDEX versions_by_path ON versions (task_id, path, kept_ns);
CREATE INDEX versions_by_hash ON versions (task_id, hash);

-- How long a task keeps versions, when its person chose (no row: the default policy).
-- `keep`: 'off', 'trash' (every version for `days`) or 'staggered' (thinned with age,
-- none past `days`); `cap`: bytes all of the task's versions may take (NULL: the default).
CREATE TABLE version_policies (
    task_id BLOB PRIMARY KEY REFERENCES sync_tasks (task_id) ON DELETE CASCADE,
    keep    TEXT NOT NULL,
    days    INTEGER NOT NULL,
    cap     INTEGER
);
