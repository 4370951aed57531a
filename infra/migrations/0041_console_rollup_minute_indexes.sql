-- The histogram rollups are keyed (kind, minute|hour, bucket), so their refresher's reads and
-- deletes by time alone (0012's DELETE ... WHERE minute = ANY (todo), 0014's hourly roll-up
-- JOIN ... ON minute >= h AND minute < h + 1 hour) could not use the key: every refresh round
-- scanned the whole minute histogram (60 rows a minute: 2.6 M rows for 30 days) once per hour
-- it rolled up, so that bringing 30 days up to date took over 20 minutes and each round of a
-- live console cost a scan. Indexed by time alone, a round reads only its minutes.
CREATE INDEX IF NOT EXISTS console_minute_hist_minute_idx ON console_minute_hist (minute);
CREATE INDEX IF NOT EXISTS console_hour_hist_hour_idx ON console_hour_hist (hour);
