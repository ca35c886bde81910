//! The `apps` table: apps installed from the Magasin, each with the sync task of its data
//! folder. What an app *is* (its JSON description) is kept as text; this crate does not
//! interpret it.

use std::path::PathBuf;

use qsync_base::TaskId;
use rusqlite::{params, OptionalExtension};

use crate::{corrupt, id32, Store, StoreError};

/// An installed app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// Its name (unique).
    pub name: String,
    /// `grapin` or `tout-en-un`.
    pub kind: String,
    /// The sync task of its data folder, if it still exists.
    pub task: Option<TaskId>,
    /// The data folder.
    pub data_folder: PathBuf,
    /// Where a tout-en-un app is installed.
    pub app_dir: Option<PathBuf>,
    /// Its JSON description, as installed.
    pub config: String,
    /// When it was installed, in seconds since the Unix epoch.
    pub installed_at: i64,
}

type AppRow = (
    String,
    String,
    Option<Vec<u8>>,
    String,
    Option<String>,
    String,
    i64,
);

fn app_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AppRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn app_record(row: AppRow) -> Result<AppRecord, StoreError> {
    let (name, kind, task, data_folder, app_dir, config, installed_at) = row;
    Ok(AppRecord {
        name,
        kind,
        task: task
            .map(|t| id32(t, "task id").map(TaskId::from_bytes))
            .transpose()?,
        data_folder: PathBuf::from(data_folder),
        app_dir: app_dir.map(PathBuf::from),
        config,
        installed_at,
    })
}

const COLUMNS: &str = "name, kind, task_id, data_folder, app_dir, config, installed_at";

impl Store {
    /// Record an installed app. Fails if an app of that name is already recorded.
    pub fn add_app(&mut self, app: &AppRecord) -> Result<(), StoreError> {
        let text = |p: &PathBuf| {
            p.to_str()
                .map(str::to_owned)
                .ok_or_else(|| corrupt("app folder", format!("{} is not UTF-8", p.display())))
        };
        self.conn.execute(
            &format!("INSERT INTO apps ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                app.name,
                app.kind,
                app.task.map(|t| t.as_bytes().to_vec()),
                text(&app.data_folder)?,
                app.app_dir.as_ref().map(text).transpose()?,
                app.config,
                app.installed_at
            ],
        )?;
        Ok(())
    }

    /// The app named `name`.
    pub fn app(&self, name: &str) -> Result<Option<AppRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM apps WHERE name = ?1"),
                [name],
                app_row,
            )
            .optional()?
            .map(app_record)
            .transpose()
    }

    /// Every installed app, by name.
    pub fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM apps ORDER BY name"))?;
        let rows = stmt.query_map([], app_row)?;
        rows.map(|row| app_record(row?)).collect()
    }

    /// Forget the app named `name` (its task is removed separately). Returns whether it was
    /// recorded.
    pub fn remove_app(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM apps WHERE name = ?1", [name])?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_are_recorded_and_outlive_their_task() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let task = TaskId::random();
        store
            .add_task(task, "/data/notes".as_ref(), "Notes")
            .unwrap();
        let app = AppRecord {
            name: "Notes".into(),
            kind: "grapin".into(),
            task: Some(task),
            data_folder: "/data/notes".into(),
            app_dir: None,
            config: "{}".into(),
            installed_at: 1,
        };
        store.add_app(&app).unwrap();
        assert!(store.add_app(&app).is_err(), "names are unique");
        assert_eq!(store.app("Notes").unwrap(), Some(app.clone()));
        store.remove_task(task).unwrap();
        assert_eq!(store.apps().unwrap()[0].task, None);
        assert!(store.remove_app("Notes").unwrap());
        assert!(!store.remove_app("Notes").unwrap());
        let mut bad = app;
        bad.kind = "virus".into();
        assert!(store.add_app(&bad).is_err());
    }
}
