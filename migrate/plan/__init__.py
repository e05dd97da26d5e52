"""Stage 3: items become the exact calls a run would send (batches, metadata, fingerprint), checked.

`pipeline` composes the stages a dry run and a run share: read the source, transform, plan.
"""
