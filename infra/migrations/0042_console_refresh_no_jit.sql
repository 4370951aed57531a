-- The rollup refreshers run without JIT, whoever calls them (the console's refresher, the
-- bench, tests, psql). Their per-minute lookups over the daily partitions are costed far above
-- jit_above_cost (the planner multiplies each minute by every partition), so PostgreSQL
-- compiled, inlined and optimised hundreds of functions per statement: 6.6 s for one that ran
-- in 10 ms, most of every refresh round, and most of the 23 minutes the bench took to bring
-- 30 days of rollups up to date. A later CREATE OR REPLACE of these functions drops this
-- setting: repeat it there.
ALTER FUNCTION console_refresh_decision_minutes(integer, double precision) SET jit = off;
ALTER FUNCTION console_refresh_label_minutes(integer, double precision) SET jit = off;
ALTER FUNCTION console_roll_hours(timestamptz[]) SET jit = off;
ALTER FUNCTION console_roll_label_hours(timestamptz[]) SET jit = off;
