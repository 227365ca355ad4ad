//! certkeeper's embedded HTTP-01 responder (axum).
