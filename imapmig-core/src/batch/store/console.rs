//! The web console's own secrets (`batch_console`): named values such as the hash of the admin
//! token and the key that signs its cookies. They belong to the store, not to a task, and are
//! sealed with the store's key like account passwords (see [`super::sealing`]).

use rusqlite::{params, OptionalExtension};

use super::{now, BatchStore};
use crate::batch::error::BatchError;
use crate::secret::Secret;

/// Errors name no task: these values are the store's.
const NO_TASK: &str = "";

impl BatchStore {
    /// The console value called `name`, opened; `None` when it was never set.
    pub fn console_value(&self, name: &str) -> Result<Option<Secret>, BatchError> {
        let stored: Option<String> = self
            .lock()
            .prepare_cached("SELECT value FROM batch_console WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
            .map_err(self.sql("read a console value", NO_TASK, Some(name)))?;
        stored
            .map(|v| self.open_secret(NO_TASK, Some(name), "batch_console", "value", &v))
            .transpose()
    }

    /// Sets the console value called `name` (sealed when the store has a key), replacing the
    /// one it had.
    pub fn set_console_value(&self, name: &str, value: &Secret) -> Result<(), BatchError> {
        self.write("set a console value", NO_TASK, |tx| {
            tx.execute(
                "INSERT INTO batch_console (name, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET value = ?2, updated_at = ?3",
                params![
                    name,
                    self.seal_secret("batch_console", "value", value),
                    now()
                ],
            )
            .map_err(self.sql("set a console value", NO_TASK, Some(name)))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::seal::StateKey;
    use crate::batch::store::tests::tempfile_dir;

    fn raw(s: &BatchStore, name: &str) -> String {
        s.lock()
            .query_row(
                "SELECT value FROM batch_console WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn console_values_round_trip_sealed_with_the_key() {
        let dir = tempfile_dir();
        let path = dir.join("s.sqlite");
        {
            // Set before the store had a key: sealed on its first opening with one.
            let s = BatchStore::open(&path).unwrap();
            assert!(s.console_value("admin_token").unwrap().is_none());
            s.set_console_value("admin_token", &Secret::new("$argon2id$old"))
                .unwrap();
            assert_eq!(raw(&s, "admin_token"), "$argon2id$old");
        }
        let key = || Some(StateKey::from_text("console test key").unwrap());
        let s = BatchStore::open_with_key(&path, key()).unwrap();
        assert_ne!(raw(&s, "admin_token"), "$argon2id$old");
        assert_eq!(
            s.console_value("admin_token").unwrap().unwrap().expose(),
            "$argon2id$old"
        );
        s.set_console_value("admin_token", &Secret::new("$argon2id$new"))
            .unwrap();
        s.set_console_value("cookie_key", &Secret::new("k3y"))
            .unwrap();
        for (name, plain) in [("admin_token", "$argon2id$new"), ("cookie_key", "k3y")] {
            assert!(!raw(&s, name).contains(plain), "{name}");
            assert_eq!(s.console_value(name).unwrap().unwrap().expose(), plain);
        }
        drop(s);
        let again = BatchStore::open_with_key(&path, key()).unwrap();
        assert_eq!(
            again.console_value("cookie_key").unwrap().unwrap().expose(),
            "k3y"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
