"""Pure logic: wire protocol, records, keys, configuration, schedules. No I/O here."""
