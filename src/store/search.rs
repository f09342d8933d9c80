//! Full-text search over messages (OC7): SQLite's FTS5 index, filled off the commit path in
//! batches, and PostgreSQL's GIN index over `to_tsvector('simple', body)`, maintained by
//! PostgreSQL itself. User input never reaches either query language: it is reduced to
//! words first.

use super::{Pool, Store, StoreResult};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde::Serialize;

/// Messages indexed per SQLite transaction.
const INDEX_BATCH: i64 = 20_000;

/// A message found by a search.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    /// Where.
    pub conversation_id: i64,
    /// Which message.
    pub seq: i64,
    /// `text` or `note`.
    pub kind: String,
    /// `visitor`, `operator` or `system`.
    pub author_kind: String,
    /// The whole text (the console marks the words itself, as text).
    pub body: String,
    /// When, ms.
    pub created_at: i64,
}

/// Most conversations a text search considers.
pub(super) const SEARCH_CANDIDATES: i64 = 500;

/// The words of a search, reduced to letters and digits so they cannot carry query syntax
/// into FTS5 or `to_tsquery`; at most eight.
pub fn search_terms(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
        .map(str::to_lowercase)
        .collect()
}

impl Store {
    /// Conversation ids whose messages contain every word of `terms` (by prefix), through
    /// the backend's full-text index, newest first.
    pub(super) fn text_matches(&self, terms: &[String], limit: i64) -> StoreResult<Vec<i64>> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        self.index_pending()?;
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            conversation_id: i64,
        }
        let rows: Vec<Id> = match &self.pool {
            Pool::Sqlite(pool) => {
                let q = fts5_query(terms);
                diesel::sql_query(
                    "SELECT m.conversation_id AS conversation_id FROM messages_fts f \
                     JOIN messages m ON m.id = f.rowid WHERE messages_fts MATCH ? \
                     GROUP BY m.conversation_id ORDER BY MAX(m.id) DESC LIMIT ?",
                )
                .bind::<diesel::sql_types::Text, _>(q)
                .bind::<diesel::sql_types::BigInt, _>(limit)
                .load(&mut *pool.get()?)?
            }
            Pool::Postgres(pool) => {
                let q = tsquery(terms);
                diesel::sql_query(
                    "SELECT conversation_id FROM messages \
                     WHERE kind IN ('text', 'note') \
                     AND to_tsvector('simple', body) @@ to_tsquery('simple', $1) \
                     GROUP BY conversation_id ORDER BY MAX(created_at) DESC LIMIT $2",
                )
                .bind::<diesel::sql_types::Text, _>(q)
                .bind::<diesel::sql_types::BigInt, _>(limit)
                .load(&mut *pool.get()?)?
            }
        };
        Ok(rows.into_iter().map(|r| r.conversation_id).collect())
    }

    /// Messages containing every word of `terms`, newest first, in conversations the
    /// reader may see; within one conversation when `within` is given.
    pub fn search_messages(
        &self,
        reader: i64,
        terms: &[String],
        within: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<SearchHit>> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        self.index_pending()?;
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            conversation_id: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            seq: i64,
            #[diesel(sql_type = diesel::sql_types::Text)]
            kind: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            author_kind: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            body: String,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            created_at: i64,
        }
        use diesel::sql_types::{BigInt, Nullable, Text};
        // Internal chats only for their members; visitor conversations for every operator.
        let visible = "(c.kind = 'visitor' OR EXISTS (SELECT 1 FROM conversation_members cm \
                       WHERE cm.conversation_id = c.id AND cm.operator_id = {reader}))";
        let rows: Vec<Row> = match &self.pool {
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "SELECT m.conversation_id, m.seq, m.kind, m.author_kind, m.body, m.created_at \
                     FROM messages_fts f JOIN messages m ON m.id = f.rowid \
                     JOIN conversations c ON c.id = m.conversation_id \
                     WHERE messages_fts MATCH ? AND (? IS NULL OR m.conversation_id = ?) AND {} \
                     ORDER BY m.id DESC LIMIT ?",
                    visible.replace("{reader}", "?")
                );
                diesel::sql_query(sql)
                    .bind::<Text, _>(fts5_query(terms))
                    .bind::<Nullable<BigInt>, _>(within)
                    .bind::<Nullable<BigInt>, _>(within)
                    .bind::<BigInt, _>(reader)
                    .bind::<BigInt, _>(limit)
                    .load(&mut *pool.get()?)?
            }
            Pool::Postgres(pool) => {
                let sql = format!(
                    "SELECT m.conversation_id, m.seq, m.kind, m.author_kind, m.body, m.created_at \
                     FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                     WHERE m.kind IN ('text', 'note') \
                     AND to_tsvector('simple', m.body) @@ to_tsquery('simple', $1) \
                     AND ($2::bigint IS NULL OR m.conversation_id = $2) AND {} \
                     ORDER BY m.created_at DESC, m.seq DESC LIMIT $4",
                    visible.replace("{reader}", "$3")
                );
                diesel::sql_query(sql)
                    .bind::<Text, _>(tsquery(terms))
                    .bind::<Nullable<BigInt>, _>(within)
                    .bind::<BigInt, _>(reader)
                    .bind::<BigInt, _>(limit)
                    .load(&mut *pool.get()?)?
            }
        };
        Ok(rows
            .into_iter()
            .map(|r| SearchHit {
                conversation_id: r.conversation_id,
                seq: r.seq,
                kind: r.kind,
                author_kind: r.author_kind,
                body: r.body,
                created_at: r.created_at,
            })
            .collect())
    }

    /// SQLite: adds the messages committed since the last call to the full-text index, in
    /// batches of [`INDEX_BATCH`], and returns how many messages it scanned. Searches call
    /// it first, so they never miss a committed message; a background thread calls it too,
    /// so the work is done in large batches off the commit path. PostgreSQL: nothing to do.
    pub fn index_pending(&self) -> StoreResult<usize> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Ok(0);
        };
        let mut conn = pool.get()?;
        let mut scanned = 0;
        loop {
            let n = conn.immediate_transaction(index_batch)?;
            scanned += n;
            if n < INDEX_BATCH as usize {
                return Ok(scanned);
            }
        }
    }

    /// Starts a thread that keeps the full-text index current off the commit path, every
    /// `every`, until `stop` is set: on SQLite it indexes new messages; on PostgreSQL it
    /// merges the GIN index's pending list, so no committing transaction has to.
    pub fn spawn_indexer(
        &self,
        every: std::time::Duration,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> std::io::Result<()> {
        let store = self.clone();
        std::thread::Builder::new()
            .name("charla-indexer".into())
            .spawn(move || {
                use std::sync::atomic::Ordering;
                let mut warned = false;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(every);
                    let done = match &store.pool {
                        Pool::Sqlite(_) => store.index_pending().map(|_| ()),
                        Pool::Postgres(pool) => pool
                            .get()
                            .map_err(super::StoreError::from)
                            .and_then(|mut c| {
                                c.batch_execute(
                                    "SELECT gin_clean_pending_list('messages_fts'::regclass)",
                                )
                                .map_err(super::StoreError::from)
                            }),
                    };
                    match done {
                        Ok(()) => warned = false,
                        Err(e) if !warned => {
                            tracing::warn!(error = %e, "full-text index upkeep failed; retrying");
                            warned = true;
                        }
                        Err(_) => {}
                    }
                }
            })
            .map(|_| ())
    }
}

/// One batch of [`Store::index_pending`], inside its transaction.
fn index_batch(conn: &mut diesel::SqliteConnection) -> Result<usize, super::StoreError> {
    use diesel::sql_types::BigInt;
    #[derive(QueryableByName)]
    struct Mark {
        #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
        id: Option<i64>,
    }
    let done: Mark = diesel::sql_query(
        "SELECT CAST(value AS INTEGER) AS id FROM settings WHERE key = 'search.indexed_rowid'",
    )
    .get_result(conn)
    .optional()?
    .unwrap_or(Mark { id: None });
    let done = done.id.unwrap_or(0);
    #[derive(QueryableByName)]
    struct Range {
        #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
        upto: Option<i64>,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let range: Range = diesel::sql_query(
        "SELECT MAX(id) AS upto, COUNT(*) AS n FROM \
         (SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT ?)",
    )
    .bind::<BigInt, _>(done)
    .bind::<BigInt, _>(INDEX_BATCH)
    .get_result(conn)?;
    let Some(upto) = range.upto else {
        return Ok(0);
    };
    diesel::sql_query(
        "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages \
         WHERE id > ? AND id <= ? AND kind IN ('text', 'note')",
    )
    .bind::<BigInt, _>(done)
    .bind::<BigInt, _>(upto)
    .execute(conn)?;
    conn.batch_execute(&format!(
        "INSERT OR REPLACE INTO settings (key, value) VALUES ('search.indexed_rowid', '{upto}')"
    ))?;
    Ok(range.n as usize)
}

/// An FTS5 query: every term as a quoted prefix, all required.
fn fts5_query(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{t}\"*"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `to_tsquery` query: every term as a prefix, all required.
fn tsquery(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("{t}:*"))
        .collect::<Vec<_>>()
        .join(" & ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_carry_no_query_syntax() {
        assert_eq!(
            search_terms("  \"pedido\" OR x* -NOT (tracking)  "),
            vec!["pedido", "or", "x", "not", "tracking"]
        );
        assert_eq!(search_terms("café 123"), vec!["café", "123"]);
        assert!(search_terms("*** ''").is_empty());
        assert_eq!(fts5_query(&search_terms("a b")), "\"a\"* \"b\"*");
        assert_eq!(tsquery(&search_terms("a b")), "a:* & b:*");
    }
}
