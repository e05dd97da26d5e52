"""Stage 2, pure: a neutral conversation becomes API items under a stated policy, with findings."""
