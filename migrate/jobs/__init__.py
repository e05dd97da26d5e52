"""The verbs as library functions over a job directory and its state store, one module each.

`plan` (the dry run), `run` (run, resume, work), `status` (status, report files), `verify`,
`rollback`; `models` holds their configs and results, `directory` the job directory.
"""
