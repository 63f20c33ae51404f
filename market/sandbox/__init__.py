"""The sandbox query engine: rules, a locked DuckDB, calibrated noise. A library: it imports no domain."""
