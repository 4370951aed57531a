-- Hourly KPIs over the decisions: volume, verdict mix, score and latency.
CREATE OR REPLACE VIEW kpi_hourly AS
SELECT
    date_trunc('hour', occurred_at)                                  AS hour,
    count(*)                                                         AS decisions,
    count(*) FILTER (WHERE decision = 'APPROVED')                    AS approved,
    count(*) FILTER (WHERE decision = 'REQUIRE_2FA')                 AS require_2fa,
    count(*) FILTER (WHERE decision = 'MANUAL_REVIEW')               AS manual_review,
    count(*) FILTER (WHERE decision = 'BLOCKED')                     AS blocked,
    avg(score)                                                       AS avg_score,
    percentile_cont(0.5)  WITHIN GROUP (ORDER BY latency_ms)         AS latency_p50_ms,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)         AS latency_p99_ms
FROM decisions
GROUP BY 1;
