-- Tombstones every linked device has acknowledged are forgotten (qsync-core's
-- `core/tombstones.rs`). What must outlive them, per task: the highest sequence number a
-- forgotten tombstone held (numbers are never used twice, or a peer would skip a record).
CREATE TABLE forgotten_tombstones (
    task_id BLOB PRIMARY KEY REFERENCES sync_tasks (task_id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL
) WITHOUT ROWID;

-- The tombstones in sequence order, read at each acknowledgement: an index of them alone,
-- so that reading them never walks the records of files that exist.
CREATE INDEX tombstones_by_seq ON records (task_id, seq) WHERE kind = 0;
