"""The console's oversight pages: stress tests, the daily margin report, forced sales explained."""
