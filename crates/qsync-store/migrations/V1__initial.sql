-- The seed's `sync` table.
CREATE TABLE sync_tasks (
    task_id    BLOB PRIMARY KEY CHECK (length(task_id) = 32),
    root       TEXT NOT NULL,
    name       TEXT NOT NULL
);

-- Devices this one is linked with, for any task.
CREATE TABLE linked_devices (
    device_id    BLOB PRIMARY KEY CHECK (length(device_id) = 32),
    name         TEXT NOT NULL,
    last_address TEXT,
    is_connected INTEGER NOT NULL DEFAULT 0,
    link_key     BLOB NOT NULL CHECK (length(link_key) = 32)
);

-- Which device is linked to which task, and whether it is applying an update from us.
CREATE TABLE task_links (
    task_id          BLOB NOT NULL REFERENCES sync_tasks (task_id) ON DELETE CASCADE,
    device_id        BLOB NOT NULL REFERENCES linked_devices (device_id) ON DELETE CASCADE,
    receiving_update INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, device_id)
);

-- The seed's `filesystem`: the newest known state of every path; `hash` names the blob
-- holding the newest full content of a file.
CREATE TABLE files (
    task_id BLOB NOT NULL REFERENCES sync_tasks (task_id) ON DELETE CASCADE,
    path    TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind    INTEGER NOT NULL,
    size    INTEGER NOT NULL,
    mtime   INTEGER NOT NULL,
    hash    BLOB CHECK (hash IS NULL OR length(hash) = 32),
    PRIMARY KEY (task_id, path)
) WITHOUT ROWID;
CREATE INDEX files_by_hash ON files (hash);

-- One row per local change, in the order they happened.
CREATE TABLE updates (
    update_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     BLOB NOT NULL REFERENCES sync_tasks (task_id) ON DELETE CASCADE,
    path        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    mod_type    TEXT NOT NULL CHECK (mod_type IN ('c', 'p', 'd', 'r')),
    new_path    TEXT,
    base_hash   BLOB,
    result_hash BLOB
);

-- The seed's `retard`: which device still has to receive which update.
CREATE TABLE pending (
    update_id INTEGER NOT NULL REFERENCES updates (update_id) ON DELETE CASCADE,
    device_id BLOB NOT NULL,
    PRIMARY KEY (device_id, update_id)
) WITHOUT ROWID;
CREATE INDEX pending_by_update ON pending (update_id);

-- The delta of a modification, kept while some device still needs it.
CREATE TABLE deltas (
    update_id INTEGER PRIMARY KEY REFERENCES updates (update_id) ON DELETE CASCADE,
    delta     BLOB NOT NULL
);
