-- A task's options, chosen by its person on this device. `links_out`: symlinks received
-- from peers may point out of the task folder (0: refused, the default).
ALTER TABLE sync_tasks ADD COLUMN links_out INTEGER NOT NULL DEFAULT 0;
