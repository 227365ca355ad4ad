//! certkeeper's inventory loader: TOML text to a validated Inventory, every problem reported with file, line, column and key path.
