//! `docker build` with the classic builder's protocol: a Dockerfile ([`parser`], variables
//! by [`lex`]) run step by step ([`builder`]) on a build context ([`context`], filtered by
//! [`ignore`]); RUN steps
//! are containers of the container service, every step's result is an image ([`commit`]),
//! found again by the build cache ([`cache`]).
pub mod builder;
pub mod cache;
pub mod checksum;
pub mod commit;
pub mod context;
pub mod ignore;
pub mod instructions;
pub mod lex;
pub mod mountpoints;
pub mod parser;
pub mod run_mount;
pub mod sweep;

pub use builder::{build, BuildOptions};

/// Errors of a build; their text is what docker prints.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] parser::ParseError),
    #[error(transparent)]
    Lex(#[from] lex::LexError),
    /// An instruction that cannot be run as written (docker's text).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Context(String),
    /// A COPY/ADD source or destination problem (the caller adds `COPY failed: `).
    #[error("{0}")]
    Copy(String),
    #[error("The command '{command}' returned a non-zero code: {code}")]
    Run { command: String, code: i32 },
    #[error("the build was cancelled: its client went away")]
    Cancelled,
    #[error(transparent)]
    Image(#[from] crate::images::service::Error),
    #[error(transparent)]
    Container(#[from] crate::containers::service::Error),
}

impl BuildError {
    /// The HTTP status for an error before the build's output started.
    pub fn status(&self) -> u16 {
        match self {
            BuildError::Image(e) => e.status(),
            BuildError::Container(e) => e.status(),
            BuildError::Run { .. } => 500,
            _ => 400,
        }
    }
}
