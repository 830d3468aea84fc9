//! What a Hearth service keeps on disk: its JSON5 configuration
//! ([`config`]), its private files ([`private`]: keys, tokens, identities,
//! 0600 and written whole), its bearer tokens ([`token`]), its SQLite
//! database ([`sqlite`]) and what it seals in it ([`sealed`]); and how it
//! reads files beneath a folder others may change ([`beneath`]).

pub mod beneath;
pub mod config;
pub mod private;
pub mod sealed;
pub mod sqlite;
pub mod token;
