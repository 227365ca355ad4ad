//! certkeeper's ACME adapter over instant-acme: accounts with EAB, orders, HTTP-01, revocation, error classification.
