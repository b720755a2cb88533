//! Bind marks for hand-written multi-row statements.

use sea_orm::DbBackend;

/// Numbers the bind marks of one statement in the backend's style: `$1, $2, …` on
/// Postgres, anonymous `?` on SQLite. SQLite resolves a named mark such as `$7` by a
/// linear search through the statement's names, so a bulk statement with thousands of
/// them is quadratic to prepare and bind (it showed up as the top symbol of the sync
/// benchmark); anonymous marks cost nothing. SQLite numbers `?` by position, so every
/// mark of a statement must come from one `Marks`, in the order of its values.
pub struct Marks {
    sqlite: bool,
    next: usize,
}

impl Marks {
    /// Marks for a statement on `backend`.
    pub fn new(backend: DbBackend) -> Self {
        Self {
            sqlite: backend == DbBackend::Sqlite,
            next: 1,
        }
    }

    /// The next mark.
    pub fn one(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        if self.sqlite {
            "?".to_owned()
        } else {
            format!("${n}")
        }
    }

    /// The next `n` marks, separated by commas (an `IN` list).
    pub fn list(&mut self, n: usize) -> String {
        (0..n).map(|_| self.one()).collect::<Vec<_>>().join(",")
    }

    /// The next `n` marks in parentheses (a `VALUES` row).
    pub fn row(&mut self, n: usize) -> String {
        format!("({})", self.list(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_marks_are_numbered_and_sqlite_marks_are_positional() {
        let mut pg = Marks::new(DbBackend::Postgres);
        assert_eq!(pg.one(), "$1");
        assert_eq!(pg.row(2), "($2,$3)");
        assert_eq!(pg.list(2), "$4,$5");
        let mut lite = Marks::new(DbBackend::Sqlite);
        assert_eq!(lite.one(), "?");
        assert_eq!(lite.row(2), "(?,?)");
    }
}
