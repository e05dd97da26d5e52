"""The job's state store: schema and upgrades, records, the intent/outcome journal, leases."""
