//! One module per subcommand.

pub mod bench;
pub mod broker;
pub mod client;
pub mod consume;
pub mod convert;
pub mod demo;
pub mod detect;
pub mod eval;
pub mod generate;
pub mod groups;
pub mod produce;
pub mod produce_raw;
pub mod rows;
pub mod score;
pub mod signals;
pub mod topics;
pub mod train;
