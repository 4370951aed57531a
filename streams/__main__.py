"""``python -m streams`` = ``sentinel worker``."""

from streams.worker import main

main()
