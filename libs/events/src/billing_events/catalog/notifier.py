"""Events the notifier publishes: what was told to whom (masked), and what failed."""
