-- Finding the pending updates of one path (made redundant by a full-content send).
CREATE INDEX updates_by_path ON updates (task_id, path);
