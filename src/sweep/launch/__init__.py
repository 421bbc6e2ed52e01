"""Ways to start the processes that train a sweep. Every one of them runs `sweep worker` (or the pool
that `sweep run` starts) against the store: claims decide who trains what, and results are read from
the store, never from an engine's return values."""
