"""The `arbiter` command: one umbrella over the packages' own subcommands."""
