-- Standing rooms: what a room is, never what happened in it (no times, no names, no counts).
-- The same SQL runs on SQLite and PostgreSQL; sqlx applies it in a transaction.
CREATE TABLE standing_rooms (
    id              TEXT PRIMARY KEY,      -- organiser id
    link            TEXT NOT NULL UNIQUE,  -- members' link id (the room id in the URL)
    title           TEXT NOT NULL,
    title_key       TEXT NOT NULL UNIQUE,  -- lower-cased title, for the uniqueness rule
    settings        TEXT NOT NULL,         -- JSON, circle_protocol::Settings
    secret_sha256   TEXT NOT NULL,         -- hex SHA-256 of the facilitator secret
    schedule        TEXT,                  -- JSON Schedule, or NULL
    early_open_mins INTEGER NOT NULL
);
