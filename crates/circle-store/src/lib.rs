//! Standing rooms' definitions, kept in a database: what a room *is*, never what happened in it.
//!
//! # Layout
//!
//! - [`schedule`]: the weekly [`Schedule`], parsed from its JSON shape, and the pure functions that
//!   say when the next occurrence starts and when its waiting room opens (time passed in, no IO).
//! - [`room`]: the stored record ([`StandingRoom`]), what a caller gives to create or change one
//!   ([`NewStandingRoom`], [`StandingPatch`]), the ids and the facilitator secret's hash.
//! - [`store`]: the [`Store`]: a connection pool to SQLite (embedded, a file in the data directory)
//!   or PostgreSQL, migrations, and one method per operation; every write is one transaction and
//!   every call is bounded in time.
//! - [`error`]: [`StoreError`], the one error type, mapped from database errors by kind and code.
//!
//! What is stored is exactly one row per standing room: the ids, the title, the settings, the
//! SHA-256 of the facilitator secret and the schedule. No meeting, participant, name, chat text,
//! time of anything or count is ever written, and nothing that names a room, a title or a secret is
//! logged at info level or above (this crate logs nothing; sqlx's statement logging is off).

pub mod error;
pub mod room;
pub mod schedule;
pub mod store;

pub use error::StoreError;
pub use room::{
    FacilitatorSecret, MAX_EARLY_OPEN_MINS, MAX_TITLE_CHARS, NewStandingRoom, SecretHash,
    StandingId, StandingPatch, StandingRoom,
};
pub use schedule::{InvalidSchedule, Schedule};
pub use store::{Limits, Store, StoreConfig};
