"""The `ace` command line: thin entry points over ACELib functions (one module per subcommand)."""
