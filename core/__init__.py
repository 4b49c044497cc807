"""Power Buyer platform kernel: configuration, database, tenancy, plugins, jobs."""
