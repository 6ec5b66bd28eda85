"""Alerts: position alerts from operator specifications, missing logbook declarations and silent
beacons, all reconciled into one `alerts.pending_alerts` table that the monitoring application reads.

Pure modules (specifications, zones, position_alerts, missing_declarations, beacons, pending) hold
the logic; `store` speaks SQL; `assets`, `checks`, `jobs` and `definitions` are the Dagster face.
"""
