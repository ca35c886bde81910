-- A task's folder type on this device: 'send-receive' (the default) or 'send-only' (the
-- changes of other devices are not applied here; they are kept as rivals, and `qsync
-- revert` makes this device's versions win).
ALTER TABLE sync_tasks ADD COLUMN folder_type TEXT NOT NULL DEFAULT 'send-receive';
