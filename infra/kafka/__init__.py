"""The embedded Apache Kafka broker: Maven resolves its jars (``pom.xml``), ``broker`` runs it."""
