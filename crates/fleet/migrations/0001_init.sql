-- certkeeper fleet schema, version 1. Applied once, in one transaction, under an advisory lock.
-- Every table carries the certkeeper_ prefix so the schema can share a database with others.

-- The nodes of the fleet: a row per node name, last_seen from the database's clock.
CREATE TABLE certkeeper_nodes (
    name        text PRIMARY KEY,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now()
);

-- One row: a known constant sealed with the fleet key at the first start, so a node started with
-- another key fails at connect instead of writing keys that the other nodes cannot open.
CREATE TABLE certkeeper_key_check (
    id          integer PRIMARY KEY CHECK (id = 1),
    sealed      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A lineage's lease: who may order and write for it, until when (database clock), and the
-- generation that every fenced write checks.
CREATE TABLE certkeeper_leases (
    lineage     text PRIMARY KEY,
    owner       text NOT NULL,
    generation  bigint NOT NULL CHECK (generation > 0),
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now()
);

-- Certificate versions. The private key is sealed with the fleet key (AES-256-GCM, the AAD
-- names lineage and version); certificates are public and stored as PEM.
CREATE TABLE certkeeper_versions (
    lineage        text NOT NULL,
    version        bigint NOT NULL CHECK (version > 0),
    serial         text NOT NULL,
    cert_pem       text NOT NULL,
    chain_pem      text NOT NULL,
    fullchain_pem  text NOT NULL,
    key_sealed     bytea NOT NULL,
    not_after      timestamptz NOT NULL,
    published_by   text NOT NULL,
    generation     bigint NOT NULL,
    published_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lineage, version)
);

-- A lineage's renewal state (the engine's JSON document), written under the lease.
CREATE TABLE certkeeper_state (
    lineage     text PRIMARY KEY,
    state       jsonb NOT NULL,
    updated_by  text NOT NULL,
    generation  bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The order in flight per lineage, so that another node resumes it by URL, with the key its
-- CSR is (or will be) made from, sealed like a version's.
CREATE TABLE certkeeper_orders (
    lineage       text PRIMARY KEY,
    order_url     text NOT NULL,
    directory_url text NOT NULL,
    key_sealed    bytea NOT NULL,
    owner       text NOT NULL,
    generation  bigint NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- ACME accounts, one per CA and EAB credential for the whole fleet, sealed with the fleet key.
CREATE TABLE certkeeper_accounts (
    ca_key      text PRIMARY KEY,
    sealed      bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- HTTP-01 key authorisations of the orders in flight; every node serves them.
CREATE TABLE certkeeper_challenges (
    token             text PRIMARY KEY,
    key_authorization text NOT NULL,
    lineage           text NOT NULL,
    owner             text NOT NULL,
    published_at      timestamptz NOT NULL DEFAULT now()
);
