-- Permission bits of each path (0: unknown, for rows made before they were kept).
ALTER TABLE files ADD COLUMN mode INTEGER NOT NULL DEFAULT 0;
