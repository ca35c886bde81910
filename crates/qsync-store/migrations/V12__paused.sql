-- A task paused by its person on this device: its changes are recorded, and nothing of
-- it is sent or taken until it is resumed (0: syncing, the default).
ALTER TABLE sync_tasks ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
