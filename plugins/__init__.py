"""In-tree plugins, each registered through the powerbuyer.plugins entry point."""
