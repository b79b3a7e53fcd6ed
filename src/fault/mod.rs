pub use crate::env::EnvError;
