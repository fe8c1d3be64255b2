//! What only the `notes` example's tests share. Everything else (the HTTP client, running an
//! example, temporary directories) is in `intralb-test-support`.

/// Reads the notes database file directly: every acknowledged id must be there, once.
pub fn assert_notes_stored(db: &str, acknowledged: &[i64]) {
    let conn = rusqlite::Connection::open(db).unwrap();
    for id in acknowledged {
        let found: i64 = conn
            .query_row("SELECT count(*) FROM notes WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(found, 1, "acknowledged note {id} is not in the database");
    }
}
