-- A device paused by this device's person: no connection with it, for any task, until
-- it is resumed (0: syncing, the default).
ALTER TABLE linked_devices ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
