"""certkeeper's side-by-side benchmark against certbot and lego (see ../run and docs/benchmarks.md)."""
