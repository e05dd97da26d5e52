"""Stage 4: land each plan in the target exactly once (replayer, target, rate limiter, workers)."""
