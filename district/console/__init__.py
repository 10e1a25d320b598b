"""The district web console: fleet, stations, alerts (test / exercise / actual), acks, audit log.

`service.Console` does the work (database, MQTT, signing), `server.ConsoleServer` serves it over HTTP,
`views` renders HTML, `i18n` holds every string (Vietnamese and English), `accounts` the passwords, sessions,
CSRF and rate limiting, `store` the console's own tables. Started by `loa-district console`.
"""
