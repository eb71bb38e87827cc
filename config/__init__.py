"""The project: settings, URLs, WSGI/ASGI and the self-service home. It imports every app; no app imports it."""
