"""nftables: the pure compiler, and the adapter that applies and reads back rulesets."""
