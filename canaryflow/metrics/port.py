"""The `MetricsSource` port: one metric, one track, one time window -> one observation.

Adapters: Prometheus (queries rendered from the spec's templates) and simulated (reads the traffic
simulator directly; the embedded default when no Prometheus is installed). An adapter never returns
a number it did not get: no samples is `NoDataError`, a bad query `QueryError`, an unreachable or
failing backend `MetricsUnavailableError` (retryable).
"""
