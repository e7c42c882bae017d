//! Charts: running Helm, opening charts offline, and the user's values.

pub mod helm;
pub mod source;
pub mod values;
