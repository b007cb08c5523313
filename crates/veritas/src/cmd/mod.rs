//! One module per subcommand.

pub mod broker;
