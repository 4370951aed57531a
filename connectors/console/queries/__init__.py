"""Read models of the console: one module per section, each an async function of an open
``psycopg.AsyncConnection`` (and Redis or Kafka where the section needs them) returning plain
dicts that both the JSON API and the HTML pages render."""
