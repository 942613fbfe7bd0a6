"""Demo data generators: one module per product, each a deterministic stand-in for its Supabase database."""
