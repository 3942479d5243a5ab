# Makes the integration tier a package, so its module names cannot clash
# with same-named test files of other tiers (tests/attack).
