//! What the journal asks of a SQL database, so that its rules are written
//! once for SQLite and PostgreSQL: statements with `?1`-style parameters,
//! rows of plain values, and one write transaction at a time.
//!
//! The journal's SQL keeps to what both databases speak alike (`ON
//! CONFLICT`, `RETURNING`, partial unique indexes, `EXISTS`); each driver
//! keeps its own schema text, settings and connection.

use crate::journal::JournalError;

/// A statement parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A Rust value that binds as a statement parameter.
pub(crate) trait ToParam {
    fn to_param(&self) -> Param<'_>;
}

impl ToParam for i64 {
    fn to_param(&self) -> Param<'_> {
        Param::Int(*self)
    }
}

impl ToParam for u32 {
    fn to_param(&self) -> Param<'_> {
        Param::Int(i64::from(*self))
    }
}

impl ToParam for bool {
    fn to_param(&self) -> Param<'_> {
        Param::Int(i64::from(*self))
    }
}

impl ToParam for str {
    fn to_param(&self) -> Param<'_> {
        Param::Text(self)
    }
}

impl ToParam for String {
    fn to_param(&self) -> Param<'_> {
        Param::Text(self)
    }
}

impl ToParam for [u8] {
    fn to_param(&self) -> Param<'_> {
        Param::Blob(self)
    }
}

impl ToParam for Vec<u8> {
    fn to_param(&self) -> Param<'_> {
        Param::Blob(self)
    }
}

impl<T: ToParam> ToParam for Option<T> {
    fn to_param(&self) -> Param<'_> {
        self.as_ref().map_or(Param::Null, ToParam::to_param)
    }
}

impl<T: ToParam + ?Sized> ToParam for &T {
    fn to_param(&self) -> Param<'_> {
        (**self).to_param()
    }
}

/// `params![a, b, c]`: the statement parameters, each borrowed as a [`Param`].
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::journal::sql::db::ToParam::to_param(&$value)),*][..]
    };
}
pub(crate) use params;

/// A value read from a row. Booleans (PostgreSQL's `EXISTS`, `IS NULL`)
/// read as 0 or 1, as SQLite gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// A stored value that does not read back as its type: the row was changed
/// outside certmint (or the schema is not certmint's).
#[derive(Debug)]
pub(crate) struct BadRow(pub String);

impl From<String> for BadRow {
    fn from(reason: String) -> Self {
        BadRow(reason)
    }
}

/// One row of a result.
#[derive(Debug)]
pub(crate) struct Row(pub Vec<Cell>);

impl Row {
    /// Column `index` as `T`.
    pub fn get<T: FromCell>(&self, index: usize) -> Result<T, BadRow> {
        let cell = self
            .0
            .get(index)
            .ok_or_else(|| BadRow(format!("a row has no column {index}")))?;
        // The value is not repeated: a column may hold a password or a PIN.
        T::from_cell(cell).map_err(|want| {
            let found = match cell {
                Cell::Null => "NULL",
                Cell::Int(_) => "an integer",
                Cell::Text(_) => "text",
                Cell::Blob(_) => "bytes",
            };
            BadRow(format!("column {index} is not {want} but {found}"))
        })
    }
}

/// A Rust type a column reads as.
pub(crate) trait FromCell: Sized {
    /// The value, or what was expected.
    fn from_cell(cell: &Cell) -> Result<Self, &'static str>;
}

impl FromCell for i64 {
    fn from_cell(cell: &Cell) -> Result<Self, &'static str> {
        match cell {
            Cell::Int(value) => Ok(*value),
            _ => Err("an integer"),
        }
    }
}

impl FromCell for u32 {
    fn from_cell(cell: &Cell) -> Result<Self, &'static str> {
        match cell {
            Cell::Int(value) => u32::try_from(*value).map_err(|_| "a 32-bit unsigned integer"),
            _ => Err("an integer"),
        }
    }
}

impl FromCell for bool {
    fn from_cell(cell: &Cell) -> Result<Self, &'static str> {
        match cell {
            Cell::Int(0) => Ok(false),
            Cell::Int(1) => Ok(true),
            _ => Err("0 or 1"),
        }
    }
}

impl FromCell for String {
    fn from_cell(cell: &Cell) -> Result<Self, &'static str> {
        match cell {
            Cell::Text(text) => Ok(text.clone()),
            _ => Err("text"),
        }
    }
}

impl FromCell for Vec<u8> {
    fn from_cell(cell: &Cell) -> Result<Self, &'static str> {
        match cell {
            Cell::Blob(bytes) => Ok(bytes.clone()),
            _ => Err("bytes"),
        }
    }
}

impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(cell: &Cell) -> Result<Self, &'static str> {
        match cell {
            Cell::Null => Ok(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

/// Why a statement failed.
#[derive(Debug)]
pub(crate) enum DbError {
    /// Another connection kept a lock past the bounded wait.
    Busy,
    /// Anything else, in the database's words.
    Failed(String),
}

/// A connection to the journal's database.
pub(crate) trait Database: Send {
    /// Where the journal is, for messages: a file path, or a server
    /// address without its password.
    fn location(&self) -> &str;

    /// How long a statement waits for another connection's lock.
    fn busy_wait_secs(&self) -> u64;

    /// Runs a statement; returns how many rows it changed.
    fn execute_raw(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError>;

    /// Runs a query, handing each row to `each` as it arrives (a result of
    /// millions of rows is never held whole).
    fn query_raw(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(Row) -> Result<(), JournalError>,
    ) -> Result<(), QueryError>;

    /// Begins the journal's one write transaction: it waits for any other
    /// writer (of any process or station) to finish, so that every write
    /// transaction reads what the one before it committed.
    fn begin_write(&mut self) -> Result<(), DbError>;

    /// Begins a read-only transaction that sees one state of the journal
    /// throughout (a copy reads every table of it); ended with
    /// [`Database::rollback`].
    fn begin_snapshot(&mut self) -> Result<(), DbError>;

    /// Lets the open transaction sit between statements longer than the
    /// server lets an ordinary one (PostgreSQL ends a certmint session idle
    /// in a transaction after a lease's time): a copy holds its two
    /// transactions open while it works on the other journal. Nothing where
    /// there is no such limit.
    fn allow_long_transaction(&mut self) -> Result<(), DbError> {
        Ok(())
    }

    /// Commits the write transaction: durable when this returns.
    fn commit(&mut self) -> Result<(), DbError>;

    /// Rolls the write transaction back.
    fn rollback(&mut self) -> Result<(), DbError>;

    /// Makes erased secrets unreadable in the database's own files, as far
    /// as the database allows.
    fn erase_freed_secrets(&mut self) -> Result<(), JournalError>;

    /// The database's clock, Unix time in milliseconds: leases are written
    /// and judged by it, so stations whose own clocks differ still agree
    /// on when a lease expired. An embedded database's clock is this
    /// machine's.
    fn now_ms(&mut self) -> Result<i64, DbError> {
        Ok(crate::journal::lease::now_ms())
    }

    /// What ends a `SELECT` of rows to claim: rows another transaction has
    /// locked are passed over (PostgreSQL's `FOR UPDATE SKIP LOCKED`);
    /// nothing where one writer at a time holds the whole database.
    fn skip_locked(&self) -> &'static str {
        ""
    }
}

/// Why a query stopped: the database failed, or the caller's `each` did.
#[derive(Debug)]
pub(crate) enum QueryError {
    Db(DbError),
    Each(JournalError),
}

impl From<DbError> for QueryError {
    fn from(e: DbError) -> Self {
        QueryError::Db(e)
    }
}

/// The journal error for a database failure at `location`.
pub(crate) fn journal_error(location: &str, busy_wait_secs: u64, e: DbError) -> JournalError {
    match e {
        DbError::Busy => JournalError::Busy {
            path: location.to_owned(),
            waited_secs: busy_wait_secs,
        },
        DbError::Failed(reason) => JournalError::Database {
            path: location.to_owned(),
            reason,
        },
    }
}

/// The statements every part of the journal runs, answering in journal
/// errors that name where the journal is.
impl dyn Database + '_ {
    fn failed(&self, e: DbError) -> JournalError {
        journal_error(self.location(), self.busy_wait_secs(), e)
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, JournalError> {
        self.execute_raw(sql, params).map_err(|e| self.failed(e))
    }

    /// Calls `each` with every row of the query, as it arrives.
    pub fn each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(Row) -> Result<(), JournalError>,
    ) -> Result<(), JournalError> {
        match self.query_raw(sql, params, each) {
            Ok(()) => Ok(()),
            Err(QueryError::Db(e)) => Err(self.failed(e)),
            Err(QueryError::Each(e)) => Err(e),
        }
    }

    /// Every row of the query, read by `read`.
    pub fn rows<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        mut read: impl FnMut(&Row) -> Result<T, BadRow>,
    ) -> Result<Vec<T>, JournalError> {
        let location = self.location().to_owned();
        let mut out = Vec::new();
        self.each(sql, params, &mut |row| {
            out.push(read(&row).map_err(|e| JournalError::Database {
                path: location.clone(),
                reason: e.0,
            })?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row of the query, if any, read by `read`.
    pub fn row<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        read: impl FnMut(&Row) -> Result<T, BadRow>,
    ) -> Result<Option<T>, JournalError> {
        Ok(self.rows(sql, params, read)?.into_iter().next())
    }

    /// The row the query must give (a count, a row just written): its
    /// absence is [`NoRow`], which `.optional()` turns into `None`.
    pub fn query_row<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        read: impl FnMut(&Row) -> Result<T, BadRow>,
    ) -> Result<T, NoRow> {
        match self.row(sql, params, read) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(NoRow::Missing {
                location: self.location().to_owned(),
                sql: sql.to_owned(),
            }),
            Err(e) => Err(NoRow::Failed(e)),
        }
    }
}

/// A query that was to give a row and gave none, or failed.
#[derive(Debug)]
pub(crate) enum NoRow {
    Missing { location: String, sql: String },
    Failed(JournalError),
}

impl From<NoRow> for JournalError {
    fn from(e: NoRow) -> Self {
        match e {
            NoRow::Missing { location, sql } => JournalError::Database {
                path: location,
                reason: format!(
                    "a row the journal needs is missing (changed outside certmint?): {sql}"
                ),
            },
            NoRow::Failed(e) => e,
        }
    }
}

impl From<NoRow> for crate::journal::CopyError {
    fn from(e: NoRow) -> Self {
        JournalError::from(e).into()
    }
}

/// `.optional()`: a missing row is `None`.
pub(crate) trait Optional<T> {
    fn optional(self) -> Result<Option<T>, JournalError>;
}

impl<T> Optional<T> for Result<T, NoRow> {
    fn optional(self) -> Result<Option<T>, JournalError> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(NoRow::Missing { .. }) => Ok(None),
            Err(NoRow::Failed(e)) => Err(e),
        }
    }
}

/// The journal's write transaction: begun by [`WriteTx::begin`], rolled
/// back when dropped without [`WriteTx::commit`] (an error on the way
/// leaves nothing half-written).
pub(crate) struct WriteTx<'a> {
    db: &'a mut (dyn Database + 'static),
    open: bool,
}

impl<'a> WriteTx<'a> {
    pub fn begin(db: &'a mut (dyn Database + 'static)) -> Result<Self, JournalError> {
        db.begin_write()
            .map_err(|e| journal_error(db.location(), db.busy_wait_secs(), e))?;
        Ok(Self { db, open: true })
    }

    pub fn commit(mut self) -> Result<(), JournalError> {
        self.open = false;
        self.db
            .commit()
            .map_err(|e| journal_error(self.db.location(), self.db.busy_wait_secs(), e))
    }

    /// Rolls back, as dropping it does, but saying so.
    pub fn rollback(mut self) -> Result<(), JournalError> {
        self.open = false;
        self.db
            .rollback()
            .map_err(|e| journal_error(self.db.location(), self.db.busy_wait_secs(), e))
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing of it is committed either way; a failed rollback
            // leaves the connection to be closed with the journal.
            let _ = self.db.rollback();
        }
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = dyn Database + 'static;
    fn deref(&self) -> &Self::Target {
        self.db
    }
}

impl std::ops::DerefMut for WriteTx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.db
    }
}

/// Rewrites `?1`-style parameters as `$1` (PostgreSQL's spelling), leaving
/// quoted text alone.
pub(crate) fn dollar_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renamed_outside_quoted_text_only() {
        assert_eq!(
            dollar_parameters("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn a_column_of_another_type_is_a_bad_row_not_a_panic() {
        let row = Row(vec![Cell::Text("x".into()), Cell::Null]);
        assert!(row.get::<i64>(0).is_err());
        assert_eq!(row.get::<Option<i64>>(1).unwrap(), None);
        assert!(row.get::<String>(5).is_err());
    }
}
