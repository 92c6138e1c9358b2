"""What several parts share: the wire protocol, records and Redis keys, tokens and tickets,
channel history positions, the JSON input rule, the settings declarations
and the checks every configured value passes, the pool config, logs.
No I/O here. Logic only one part uses lives in that part's ``model/``."""
