"""The regulator's oversight: stress tests on the live book, the daily margin report, forced sales explained."""
