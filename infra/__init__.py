"""Infrastructure: settings, topic registry, embedded servers, migrations and the CLI."""
