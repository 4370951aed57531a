"""The operator and fraud-team console: an authenticated web app and JSON read API.

``sentinel console`` serves it (``connectors.console.app.create_app``); see README.md here.
"""
