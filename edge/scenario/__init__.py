"""The scenario: its schema, decoded into typed values, the checks across its tables, arrival-rate
profiles and thresholds."""
