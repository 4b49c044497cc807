"""The WSGI entry point for production servers, e.g. `gunicorn 'web.wsgi:app'`."""

from core.app import create_app

app = create_app()
