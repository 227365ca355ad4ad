//! certkeeper's on-disk state: certbot-compatible live/ layout, crash-safe atomic installs, account and lineage state files.
