"""edge tune: rollout schedules compared by replication."""
