-- Apps installed from the Magasin: grapins (an existing app's data folder) and tout-en-un
-- apps (installed under <qsync root>/apps). `config` is the app's JSON description as
-- installed; `task_id` the sync task of its data folder.
CREATE TABLE apps (
    name         TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('grapin', 'tout-en-un')),
    task_id      BLOB REFERENCES sync_tasks (task_id) ON DELETE SET NULL,
    data_folder  TEXT NOT NULL,
    app_dir      TEXT,
    config       TEXT NOT NULL,
    installed_at INTEGER NOT NULL
);
